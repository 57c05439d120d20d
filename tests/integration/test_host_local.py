"""host-local as separate processes: concurrency under the flock, and sharing state with the Go plugin.

No root needed: host-local touches no network namespace, only its dataDir (a temp dir here).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from support import GO_BIN, Caller, allocations, finish, host_local_conf, ok, requires_go, source_argv, spec_error

# As bridge delegates to it: the main plugin's config, CNI_PATH /usr/lib/cni.
ENV = {"netns": "/run/netns/none", "cni_path": GO_BIN}
OURS = Caller(source_argv("host-local"), **ENV)
GO = Caller([GO_BIN / "host-local"], **ENV)
go_only = requires_go("host-local")


def conf(data_dir: Path) -> dict[str, Any]:
    return host_local_conf(data_dir, name="itest", subnet="10.20.0.0/24", type="bridge")


def address(result: Any) -> str:
    (ip,) = result["ips"]
    return ip["address"].split("/")[0]


def ip_files(data_dir: Path) -> list[str]:
    return allocations(data_dir, "itest")


def test_100_concurrent_adds_get_100_distinct_addresses(tmp_path: Path) -> None:
    stdin = conf(tmp_path)
    procs = [OURS.start("ADD", cid=f"c{i:03d}") for i in range(100)]
    addresses = [address(ok(finish(p, stdin))) for p in procs]
    assert len(set(addresses)) == 100
    assert len(ip_files(tmp_path)) == 100
    owners = {(tmp_path / "itest" / a).read_bytes() for a in addresses}
    assert owners == {f"c{i:03d}\r\neth0".encode() for i in range(100)}


@go_only
def test_interleaved_with_go_continues_round_robin_and_each_releases_the_other(tmp_path: Path) -> None:
    stdin = conf(tmp_path)
    plugins = {"go": GO, "py": OURS}
    order = ["go", "py", "py", "go", "py", "go", "go", "py"]
    got = [address(ok(plugins[who]("ADD", stdin, cid=f"{who}{i}"))) for i, who in enumerate(order)]
    assert got == [f"10.20.0.{n}" for n in range(2, 10)]          # one sequence across both binaries
    assert (tmp_path / "itest" / "last_reserved_ip.0").read_bytes() == b"10.20.0.9"
    for i, who in enumerate(order):                                 # each DELs the other's allocations
        other = "py" if who == "go" else "go"
        assert ok(plugins[other]("DEL", stdin, cid=f"{who}{i}")) is None
    assert ip_files(tmp_path) == []
    assert address(ok(OURS("ADD", stdin, cid="after"))) == "10.20.0.10"   # freed addresses are not reused first
    assert address(ok(GO("ADD", stdin, cid="after-go"))) == "10.20.0.11"


@go_only
def test_concurrent_go_and_python_never_share_an_address(tmp_path: Path) -> None:
    stdin = conf(tmp_path)
    procs = [(GO if i % 2 else OURS).start("ADD", cid=f"m{i}") for i in range(60)]
    addresses = [address(ok(finish(p, stdin))) for p in procs]
    assert len(set(addresses)) == 60 and len(ip_files(tmp_path)) == 60


@go_only
def test_go_check_and_del_accept_our_files_and_we_accept_theirs(tmp_path: Path) -> None:
    stdin = conf(tmp_path)
    ok(OURS("ADD", stdin, cid="ours"))
    ok(GO("ADD", stdin, cid="theirs"))
    assert ok(GO("CHECK", stdin, cid="ours")) is None
    assert ok(OURS("CHECK", stdin, cid="theirs")) is None
    go_file = tmp_path / "itest" / "10.20.0.3"
    assert go_file.read_bytes() == b"theirs\r\neth0"
    assert "duplicate allocation is not allowed" in spec_error(OURS("ADD", stdin, cid="theirs", timeout=60))["msg"]
