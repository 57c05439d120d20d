"""CNI_NETNS paths that are not network namespaces, through the shipped executables: a spec error at once,
never a hang in open() (issue 12, the class of item 9) and never an internal error."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from support import Caller, bridge_conf, loopback_conf, spec_error

pytestmark = pytest.mark.e2e
CONFS = {"loopback": loopback_conf(name="nsnet"), "bridge": bridge_conf(None, name="nsnet", bridge="nsbr0")}


@pytest.mark.parametrize("plugin, verb", [("loopback", "ADD"), ("loopback", "CHECK"), ("bridge", "ADD")])
@pytest.mark.parametrize("kind", ["fifo", "regular-file", "directory"])
def test_a_path_that_is_no_netns_is_code_4(plugin, kind, verb, dist_bin, host_ns, tmp_path):
    path = tmp_path / kind
    {"fifo": os.mkfifo, "regular-file": lambda p: Path(p).write_text(""), "directory": os.mkdir}[kind](path)
    call = Caller([dist_bin / plugin], inside=host_ns, timeout=20, netns=str(path), cni_path=dist_bin, CNI_ARGS=None)
    spec_error(call(verb, CONFS[plugin]), 4)
