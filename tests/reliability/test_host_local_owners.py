"""Who owns an address, decided from the files alone, as the reference decides it (issue 12, items 2 and 3).

Through the built host-local, next to the Go one (/usr/lib/cni/host-local) on the same dataDir: owners are
compared whole whatever their length, nothing is remembered between runs that a Go run could make stale (1-second
directory timestamps, reused inode numbers), and after the last DEL the dataDir holds exactly what Go's host-local
leaves. No root needed: host-local touches only its dataDir.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from support import GO_BIN, NETWORK, Answer, cni_env, gc_conf, host_local_conf, ok, requires_go, run, spec_error

GO = GO_BIN
go_only = requires_go("host-local")
# CNI_CONTAINERID is one environment string: Linux caps it at 128 KiB (MAX_ARG_STRLEN) with its name and NUL
LONG_IDS = [4089, 4090, 4096, 5000, 131_000]


def host_local(plugin_dir: Path, command: str, conf: dict[str, Any], cid: str = "") -> Answer:
    """host-local from `plugin_dir` (ours or Go's); the container ID positional, as the sequences below read best."""
    return run([plugin_dir / "host-local"], cni_env(command, cid=cid, netns="/run/netns/none"), conf)


def address(done: Answer) -> str:
    (ip,) = ok(done)["ips"]
    return ip["address"].split("/")[0]


def snapshot(root: Path) -> dict[str, tuple[str, int, bytes]]:
    """Every entry under root: (type, mode, content)."""
    out = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        kind = "d" if stat.S_ISDIR(st.st_mode) else "f" if stat.S_ISREG(st.st_mode) else "other"
        out[str(path.relative_to(root))] = (kind, stat.S_IMODE(st.st_mode), path.read_bytes() if kind == "f" else b"")
    return out


def without_file_modes(tree: dict[str, tuple[str, int, bytes]]) -> dict[str, tuple[str, int, bytes]]:
    """Go 1.1.1 creates allocation and last_reserved_ip files 0644; pycni (as later Go releases) 0600. The
    directory and `lock` modes are compared as they are."""
    return {name: (kind, mode if kind == "d" or name.endswith("/lock") else 0, data)
            for name, (kind, mode, data) in tree.items()}


@pytest.mark.parametrize("length", LONG_IDS)
def test_long_container_ids_are_matched_whole(dist_bin: Path, tmp_path: Path, length: int) -> None:
    conf = host_local_conf(tmp_path / "data")
    net = tmp_path / "data" / NETWORK
    long_id, other = "a" * length, "a" * (length - 1) + "b"        # the same but for the last byte
    first = address(host_local(dist_bin, "ADD", conf, long_id))
    assert (net / first).read_bytes() == f"{long_id}\r\neth0".encode()
    error = spec_error(host_local(dist_bin, "ADD", conf, long_id))
    assert "duplicate allocation is not allowed" in error["msg"]
    assert address(host_local(dist_bin, "ADD", conf, other)) != first        # a different owner, its own address
    ok(host_local(dist_bin, "CHECK", conf, long_id))
    ok(host_local(dist_bin, "GC", gc_conf(conf, long_id)))                   # `other` is stale, long_id is live
    assert sorted(p.name for p in net.iterdir()) == [first, "last_reserved_ip.0", "lock"]
    ok(host_local(dist_bin, "DEL", conf, long_id))
    assert sorted(p.name for p in net.iterdir()) == ["last_reserved_ip.0", "lock"]


@go_only
@pytest.mark.parametrize("length", [4096, 131_000])
def test_long_container_ids_across_go_and_pycni(dist_bin: Path, tmp_path: Path, length: int) -> None:
    conf = host_local_conf(tmp_path / "data")
    net = tmp_path / "data" / NETWORK
    by_go, by_us = "g" * length, "p" * length
    go_ip = address(host_local(GO, "ADD", conf, by_go))
    our_ip = address(host_local(dist_bin, "ADD", conf, by_us))
    ok(host_local(dist_bin, "CHECK", conf, by_go))
    ok(host_local(GO, "CHECK", conf, by_us))
    assert "duplicate allocation" in spec_error(host_local(dist_bin, "ADD", conf, by_go))["msg"]
    ok(host_local(dist_bin, "GC", gc_conf(conf, by_go, by_us)))
    assert {go_ip, our_ip} <= {p.name for p in net.iterdir()}
    ok(host_local(dist_bin, "DEL", conf, by_go))
    ok(host_local(GO, "DEL", conf, by_us))
    assert sorted(p.name for p in net.iterdir()) == ["last_reserved_ip.0", "lock"]


@go_only
@pytest.mark.parametrize("order", ["py-go-py", "go-py-go"])
def test_go_changes_within_one_timestamp_tick_are_seen(dist_bin: Path, tmp_path: Path, order: str) -> None:
    """The defect of the old owner cache: A ADD c1, B DEL c1 and B ADD c2 within one second (the same address,
    the inode reused): the directory looks unchanged on a filesystem with 1-second timestamps. The directory's
    times are put back here to make every filesystem look like that one."""
    ours, theirs = (dist_bin, GO) if order == "py-go-py" else (GO, dist_bin)
    conf = host_local_conf(tmp_path / "data", subnet="10.77.0.0/24")
    conf["ipam"]["ranges"] = [[{"subnet": "10.77.0.0/24", "rangeStart": "10.77.0.2", "rangeEnd": "10.77.0.2"}]]
    net = tmp_path / "data" / NETWORK
    assert address(host_local(ours, "ADD", conf, "c1")) == "10.77.0.2"
    ok(host_local(ours, "CHECK", conf, "c1"))
    before = os.stat(net)
    ok(host_local(theirs, "DEL", conf, "c1"))
    assert address(host_local(theirs, "ADD", conf, "c2")) == "10.77.0.2"
    os.utime(net, ns=(before.st_atime_ns, before.st_mtime_ns))
    ok(host_local(ours, "CHECK", conf, "c2"))
    spec_error(host_local(ours, "CHECK", conf, "c1"))
    ok(host_local(ours, "DEL", conf, "c1"))                                   # not c1's any more: nothing freed
    assert (net / "10.77.0.2").read_bytes() == b"c2\r\neth0"
    ok(host_local(ours, "DEL", conf, "c2"))
    assert sorted(p.name for p in net.iterdir()) == ["last_reserved_ip.0", "lock"]
    assert [p.name for p in (tmp_path / "data").iterdir()] == [NETWORK]


SEQUENCE = [("ADD", "a"), ("ADD", "b"), ("CHECK", "a"), ("DEL", "a"), ("ADD", "c"), ("DEL", "b"), ("ADD", "a"),
            ("DEL", "c"), ("DEL", "c"), ("DEL", "a"), ("DEL", "never-added")]


@go_only
@pytest.mark.parametrize("who", ["pycni", "mixed"])
def test_after_the_last_del_the_data_dir_is_what_go_leaves(dist_bin: Path, tmp_path: Path, who: str) -> None:
    """The same sequence by Go alone and by pycni (alone, or alternating with Go), each in its own dataDir."""
    trees, handed_out = {}, {}
    for side in ("go", who):
        conf = host_local_conf(tmp_path / side / "data")
        conf["ipam"]["ranges"].append([{"subnet": "fd00:77::/120"}])         # two range sets: two hints
        handed_out[side] = []
        for step, (command, cid) in enumerate(SEQUENCE):
            plugin = GO if side == "go" or (side == "mixed" and step % 2) else dist_bin
            result = ok(host_local(plugin, command, conf, cid))
            if command == "ADD":
                handed_out[side].append([ip["address"] for ip in result["ips"]])
        trees[side] = snapshot(tmp_path / side)
    assert handed_out[who] == handed_out["go"]
    assert sorted(trees["go"]) == ["data", f"data/{NETWORK}", f"data/{NETWORK}/last_reserved_ip.0",
                                   f"data/{NETWORK}/last_reserved_ip.1", f"data/{NETWORK}/lock"]
    assert without_file_modes(trees[who]) == without_file_modes(trees["go"])
