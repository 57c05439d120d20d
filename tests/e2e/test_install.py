"""`make install` puts every shipped plugin and their shared runtime into the target, and they run from there."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, SHIPPED_PLUGINS

pytestmark = pytest.mark.e2e


def test_make_install_puts_every_plugin_into_the_target(dist_bin: Path, tmp_path: Path) -> None:
    if dist_bin.resolve() != (REPO / "dist" / "cni-bin").resolve():
        pytest.skip("PYCNI_E2E_BIN points elsewhere: `make install` installs dist/cni-bin")
    done = subprocess.run(["make", "-s", "install", f"DESTDIR={tmp_path}", "CNI_BIN_DIR=/opt/cni/bin"], cwd=REPO,
                          capture_output=True, timeout=600)
    assert done.returncode == 0, done.stderr.decode()
    target = tmp_path / "opt" / "cni" / "bin"
    assert sorted(os.listdir(target)) == sorted([".pycni", *SHIPPED_PLUGINS])
    for plugin in SHIPPED_PLUGINS:
        ran = subprocess.run([str(target / plugin)], env={"CNI_COMMAND": "VERSION"}, input=b"",
                             capture_output=True, timeout=30)
        assert ran.returncode == 0, (plugin, ran.stderr.decode())
        assert "1.1.0" in json.loads(ran.stdout)["supportedVersions"], plugin
