"""The built executables (dist/cni-bin) speak the protocol, and libcni accepts them."""
from __future__ import annotations

import json
import subprocess

import pytest

from common import version as versions

pytestmark = pytest.mark.e2e
PLUGINS = ("bridge", "host-local", "portmap")


@pytest.mark.parametrize("plugin", PLUGINS)
def test_version_call(dist_bin, plugin):
    done = subprocess.run([dist_bin / plugin], env={"CNI_COMMAND": "VERSION"}, capture_output=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"cniVersion": "1.1.0", "supportedVersions": list(versions.SUPPORTED)}


@pytest.mark.parametrize("plugin", PLUGINS)
def test_about_text_without_command(dist_bin, plugin):
    done = subprocess.run([dist_bin / plugin], env={}, capture_output=True, timeout=30)
    assert done.returncode == 0 and done.stdout == b""
    assert done.stderr.decode().startswith(f"CNI {plugin} plugin (pycni)")


@pytest.mark.parametrize("plugin", PLUGINS)
def test_error_json_on_stdout_with_exit_1(dist_bin, plugin):
    env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": "/run/netns/none", "CNI_IFNAME": "eth0",
           "CNI_PATH": str(dist_bin)}
    done = subprocess.run([dist_bin / plugin], env=env, input=b'{"cniVersion":"1.0.0"}', capture_output=True,
                          timeout=30)
    assert done.returncode == 1
    assert json.loads(done.stdout) == {"cniVersion": "1.0.0", "code": 7, "msg": "missing network name at name"}


@pytest.mark.parametrize("plugin", PLUGINS)
def test_libcni_reads_the_version(dist_bin, cnitool, plugin):
    done = subprocess.run([cnitool, "version", plugin], env={"CNI_PATH": str(dist_bin)}, capture_output=True,
                          timeout=30)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["supportedVersions"] == list(versions.SUPPORTED)
