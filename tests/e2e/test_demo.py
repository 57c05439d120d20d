"""The README's first command runs scripts/demo.py: keep the main job working."""
from __future__ import annotations

import subprocess
import sys

import pytest

from support import REPO

pytestmark = pytest.mark.e2e


def test_demo_passes(dist_bin, cnitool):
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "demo.py"), "--cni-bin", str(dist_bin),
                           "--cnitool", str(cnitool)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == "demo passed"
    assert not [line for line in lines if "[FAIL]" in line]
    checked = [line for line in lines if "[ok  ]" in line]
    assert len(checked) == 14 + 15 + 14
    # act one: 2 ADD, 2 CHECK, 3 pings, 2 HTTP via the host port, 2 DEL, 3 nothing-left;
    # act two (the overlay): set-up, etcd, 2 agents ready, 2 ADD, 2 pings and 1 HTTP across nodes, 2 DEL, 2 agents
    # stopped, 2 nothing-left checks; act three (isolation, pycni): 2 network create, 4 attach, 7 reachability
    # checks (two of them: isolated), 1 nothing-left
    assert sum("(isolated): " in line and "no connection" in line for line in checked) == 2
