"""CNI_NETNS paths that are not network namespaces, through the shipped executables: a spec error at once,
never a hang in open() (issue 12, the class of item 9) and never an internal error."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
CONFS = {
    "loopback": {"cniVersion": "1.0.0", "name": "nsnet", "type": "loopback"},
    "bridge": {"cniVersion": "1.0.0", "name": "nsnet", "type": "bridge", "bridge": "nsbr0"},
}


@pytest.mark.parametrize("plugin, verb", [("loopback", "ADD"), ("loopback", "CHECK"), ("bridge", "ADD")])
@pytest.mark.parametrize("kind", ["fifo", "regular-file", "directory"])
def test_a_path_that_is_no_netns_is_code_4(plugin, kind, verb, dist_bin, host_ns, tmp_path):
    path = tmp_path / kind
    {"fifo": os.mkfifo, "regular-file": lambda p: Path(p).write_text(""), "directory": os.mkdir}[kind](path)
    env = {"CNI_COMMAND": verb, "CNI_CONTAINERID": "c1", "CNI_NETNS": str(path), "CNI_IFNAME": "eth0",
           "CNI_PATH": str(dist_bin), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    done = subprocess.run(["nsenter", f"--net={host_ns.path}", "--", str(dist_bin / plugin)],
                          input=json.dumps(CONFS[plugin]).encode(), env=env, capture_output=True, timeout=20)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert json.loads(done.stdout)["code"] == 4, done.stdout
