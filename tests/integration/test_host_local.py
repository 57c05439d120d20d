"""host-local as separate processes: concurrency under the flock, and sharing state with the Go plugin.

No root needed: host-local touches no network namespace, only its dataDir (a temp dir here).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
OURS = [sys.executable, str(REPO / "cni" / "host-local" / "main.py")]
GO = "/usr/lib/cni/host-local"
ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": f"{REPO}:{REPO / 'cni' / 'host-local'}",
       "CNI_NETNS": "/run/netns/none", "CNI_IFNAME": "eth0", "CNI_PATH": "/usr/lib/cni"}


def conf(data_dir: Path, subnet: str = "10.20.0.0/24") -> bytes:
    return json.dumps({"cniVersion": "1.0.0", "name": "itest", "type": "bridge",
                       "ipam": {"type": "host-local", "dataDir": str(data_dir),
                                "ranges": [[{"subnet": subnet}]]}}).encode()


def start(argv: list[str], command: str, cid: str) -> subprocess.Popen[bytes]:
    env = {**ENV, "CNI_COMMAND": command, "CNI_CONTAINERID": cid}
    return subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(proc: subprocess.Popen[bytes], stdin: bytes) -> Any:
    out, err = proc.communicate(stdin, timeout=120)
    assert proc.returncode == 0, (out, err)
    return json.loads(out) if out.strip() else None


def call(argv: list[str], command: str, cid: str, stdin: bytes) -> Any:
    return finish(start(argv, command, cid), stdin)


def address(result: Any) -> str:
    (ip,) = result["ips"]
    return ip["address"].split("/")[0]


def ip_files(data_dir: Path) -> list[str]:
    return sorted(p.name for p in (data_dir / "itest").iterdir() if p.name[0].isdigit())


def test_100_concurrent_adds_get_100_distinct_addresses(tmp_path: Path) -> None:
    stdin = conf(tmp_path)
    procs = [start(OURS, "ADD", f"c{i:03d}") for i in range(100)]
    addresses = [address(finish(p, stdin)) for p in procs]
    assert len(set(addresses)) == 100
    assert len(ip_files(tmp_path)) == 100
    owners = {(tmp_path / "itest" / a).read_bytes() for a in addresses}
    assert owners == {f"c{i:03d}\r\neth0".encode() for i in range(100)}


go_only = pytest.mark.skipif(not os.access(GO, os.X_OK), reason=f"Go host-local not installed at {GO}")


@go_only
def test_interleaved_with_go_continues_round_robin_and_each_releases_the_other(tmp_path: Path) -> None:
    stdin = conf(tmp_path)
    plugins = {"go": [GO], "py": OURS}
    order = ["go", "py", "py", "go", "py", "go", "go", "py"]
    got = [address(call(plugins[who], "ADD", f"{who}{i}", stdin)) for i, who in enumerate(order)]
    assert got == [f"10.20.0.{n}" for n in range(2, 10)]          # one sequence across both binaries
    assert (tmp_path / "itest" / "last_reserved_ip.0").read_bytes() == b"10.20.0.9"
    for i, who in enumerate(order):                                 # each DELs the other's allocations
        other = "py" if who == "go" else "go"
        assert call(plugins[other], "DEL", f"{who}{i}", stdin) is None
    assert ip_files(tmp_path) == []
    assert address(call(OURS, "ADD", "after", stdin)) == "10.20.0.10"   # freed addresses are not reused first
    assert address(call([GO], "ADD", "after-go", stdin)) == "10.20.0.11"


@go_only
def test_concurrent_go_and_python_never_share_an_address(tmp_path: Path) -> None:
    stdin = conf(tmp_path)
    procs = [start([GO] if i % 2 else OURS, "ADD", f"m{i}") for i in range(60)]
    addresses = [address(finish(p, stdin)) for p in procs]
    assert len(set(addresses)) == 60 and len(ip_files(tmp_path)) == 60


@go_only
def test_go_check_and_del_accept_our_files_and_we_accept_theirs(tmp_path: Path) -> None:
    stdin = conf(tmp_path)
    call(OURS, "ADD", "ours", stdin)
    call([GO], "ADD", "theirs", stdin)
    assert call([GO], "CHECK", "ours", stdin) is None
    assert call(OURS, "CHECK", "theirs", stdin) is None
    go_file = tmp_path / "itest" / "10.20.0.3"
    assert go_file.read_bytes() == b"theirs\r\neth0"
    proc = start(OURS, "ADD", "theirs")
    out, _ = proc.communicate(stdin, timeout=60)
    assert proc.returncode == 1 and "duplicate allocation is not allowed" in json.loads(out)["msg"]
