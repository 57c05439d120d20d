"""Start-up stays lean: host-local needs no netlink, no subprocess, no netaddr."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
HEAVY = ("pyroute2", "netaddr", "subprocess", "ctypes", "asyncio", "socket", "common.netns", "common.exec")


def test_plugin_imports_nothing_heavy() -> None:
    probe = (f"import sys; sys.path[:0] = [{str(REPO)!r}, {str(REPO / 'cni' / 'host-local')!r}]\n"
             "import host_local.plugin\n"
             f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-I", "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_main_runs_from_the_source_tree_in_isolated_mode() -> None:
    done = subprocess.run([sys.executable, "-I", str(REPO / "cni" / "host-local" / "main.py")],
                          env={"CNI_COMMAND": "VERSION"}, capture_output=True, text=True, check=True)
    assert '"supportedVersions"' in done.stdout
