"""scripts/timeline.py (docs/benchmarks.md, "Where the time goes") on the built executables: every process of
the chain reports its phases, in order, between its spawn and its exit."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from support import REPO

pytestmark = pytest.mark.e2e


def test_the_timeline_of_a_chain_add_and_del(dist_bin, tmp_path):
    if not (dist_bin / ".pycni").is_dir():
        pytest.skip("the phase marks are pycni's (PYCNI_E2E_BIN names other plugins)")
    out = tmp_path / "timeline.json"
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "timeline.py"), "--cni-bin", str(dist_bin),
                           "--iterations", "1", "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    table = json.loads(out.read_text())["pycni"]
    by_step: dict[str, list[tuple[str, float]]] = {}
    for entry in table:
        step, phase = entry["phase"].split(": ", 1)
        by_step.setdefault(step, []).append((phase, entry["at_ms"]))
    assert list(by_step) == ["bridge ADD", "portmap ADD", "portmap DEL", "bridge DEL"]
    for step, phases in by_step.items():
        names = [name for name, _ in phases]
        assert names[:3] == ["spawned", "interpreter up", "modules imported"], step
        assert names[-2:] == ["answered", "exited"], step
        assert names.count("interpreter up") == 1, step   # bridge runs the bundled host-local in-process
        assert [at for _, at in phases] == sorted(at for _, at in phases), step
    assert [name for name, _ in by_step["bridge ADD"]][3:-2] == [
        "ADD bridge: request read", "bridge: bridge and veth ready", "IPAM ADD host-local: start",
        "ADD host-local: request read", "ADD host-local: done", "IPAM ADD host-local: done",
        "bridge: addresses and routes set", "bridge: masquerade rules written", "bridge: port up", "ADD bridge: done"]
    assert "portmap: rules written" in [name for name, _ in by_step["portmap ADD"]]
