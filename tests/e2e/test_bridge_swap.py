"""bridge on a node where binaries get swapped (issue 12, items 4-7 and 12), through the built executables.

* DEL never refuses what the reference ADDed: every strict ADD check (tests/support/bridge_strict_checks.py), ADDed by
  Debian's Go bridge 1.1.1, is DELed by ours, and nothing is left (item 4).
* GC and STATUS succeed when the IPAM plugin is the Go host-local, which knows neither verb (item 5).
* DEL and GC of the same stale container, at once or in a forced order, both succeed and leave nothing; one
  vanished chain or rule does not keep the rest of GC's batch in place (item 6).
* DEL with CNI_NETNS left as an empty file (an unmounted bind mount) succeeds and cleans the host side (item 7).
* A host-local next to bridge that is not our own file (a wrapper, the Go binary, written over ours in place)
  is exec'd; our own one, also in a copied install, runs in-process (item 12).

Plugins run directly (as libcni would) inside a throwaway node namespace; pods are throwaway namespaces.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from support import (
    GO_BIN,
    SYSTEM_PATH,
    Answer,
    Caller,
    Netns,
    bridge_conf,
    cni_env,
    gc_conf,
    ipam,
    link_dir,
    ok,
    requires_go,
    run,
)
from support.bridge_strict_checks import CHECKS, StrictCheck
from support.bridge_strict_checks import config as strict_config

pytestmark = [pytest.mark.e2e, requires_go("bridge", "host-local")]


def plugin(host: Netns, binary: Path, command: str, conf: dict[str, Any], *, cni_path: Path, **env: Any) -> Answer:
    """`binary` as a runtime calls it, inside `host`; GC and STATUS get no container variables (as the spec sends
    them). `env`: cni_env()'s keywords (`path`: the plugin's PATH) or variables."""
    return Caller([binary], inside=host, timeout=120, cni_path=cni_path, cid="", container=None)(command, conf, **env)


def leftovers(host: Netns, data_dir: Path) -> dict[str, list[str]]:
    """Per-container state on the node: veths, allocations, masquerade chains and rules, spoof-check rules."""
    allocations = [p.name for p in data_dir.glob("*/*") if p.name[0].isdigit() or ":" in p.name]
    nat = host.sh("iptables-save -t nat; ip6tables-save -t nat", check=False)
    nft = host.sh("nft list ruleset", check=False)
    return {
        "veths": host.sh("ip -o link show type veth").split("\n")[:-1],
        "allocations": sorted(allocations),
        "iptables": [line for line in nat.splitlines() if line.startswith((":CNI-", "-A CNI-")) or "-j CNI-" in line],
        "nft": [line.strip() for line in nft.splitlines()
                if "cni-br-iface" in line or ("comment" in line and ("masquerade" in line or "macspoofchk" in line))],
    }


CLEAN = {"veths": [], "allocations": [], "iptables": [], "nft": []}


def netns_gone(pod: Netns) -> None:
    subprocess.run(["ip", "netns", "delete", pod.name], check=True)


# --- item 4: our DEL of what the Go plugin ADDed, for every strict ADD check ----------------------------------

@pytest.mark.parametrize("check", [pytest.param(c, id=c.id) for c in CHECKS])
def test_go_add_then_our_del_cleans_everything(check: StrictCheck, host_ns: Netns, netns_factory: Any,
                                               dist_bin: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "ipam"
    conf = strict_config(check, data_dir=str(data_dir))
    pod, cid = netns_factory("pod"), "b12-" + check.id.lower()
    call = dict(cid=cid, netns=pod.path, args=check.cni_args)

    refused = plugin(host_ns, dist_bin / "bridge", "ADD", conf, cni_path=dist_bin, **call)
    assert refused.code == check.code, (refused.out, refused.stderr)   # ADD keeps its strict errors
    assert leftovers(host_ns, data_dir) == CLEAN

    added = plugin(host_ns, GO_BIN / "bridge", "ADD", conf, cni_path=GO_BIN, **call)
    if check.go_add is not None:
        assert (added.status == 0) == check.go_add, (added.out, added.stderr)
    if added.status == 0:
        state = leftovers(host_ns, data_dir)
        assert state["veths"] and state["allocations"] and state["iptables"] and state["nft"], state
        conf = {**conf, "prevResult": added.out}

    for _ in range(2):   # runtimes retry DEL; the second one finds everything gone
        deleted = plugin(host_ns, dist_bin / "bridge", "DEL", conf, cni_path=dist_bin, **call)
        # CNI_ARGS both host-locals refuse at ADD; our DEL reads none of them, so it never refuses (lenient DEL)
        assert deleted.status == 0, (deleted.out, deleted.stderr)
        assert leftovers(host_ns, data_dir) == CLEAN
        assert [line.split(":")[1].strip() for line in pod.sh("ip -o link").splitlines()] == ["lo"]


# --- item 5: GC and STATUS with the Go host-local as IPAM --------------------------------------------------------

def plugin_dir(work: Path, dist_bin: Path, *, host_local: Path) -> Path:
    """A CNI_PATH of symlinks: our bridge, and `host_local`."""
    return link_dir(work / f"bin-{uuid.uuid4().hex[:6]}",
                    {"bridge": dist_bin.resolve() / "bridge", "host-local": host_local})


# What the Go host-local 1.1.1 answers GC and STATUS, by the container variables it is given
CONTAINER_ENVS = {
    "none": {},                                           # code 3 "missing containerID"
    "containerid": {"CNI_CONTAINERID": "b12-x"},          # code 4 "interface name is empty"
    "all": {"CNI_CONTAINERID": "b12-x", "CNI_IFNAME": "eth0", "CNI_NETNS": "/run/netns/b12-x"},  # "unknown CNI_COMMAND"
}


@pytest.mark.parametrize("envs", CONTAINER_ENVS, ids=list(CONTAINER_ENVS))
def test_gc_and_status_with_the_go_host_local(envs: str, host_ns: Netns, netns_factory: Any, dist_bin: Path,
                                              tmp_path: Path) -> None:
    data_dir = tmp_path / "ipam"
    path = plugin_dir(tmp_path, dist_bin, host_local=GO_BIN / "host-local")
    bridge = path / "bridge"
    conf = bridge_conf(data_dir, name="b12gonet", bridge="b12go0", subnet="10.98.0.0/24", ipMasq=True)
    new = {**conf, "cniVersion": "1.1.0"}   # GC and STATUS exist from spec 1.1.0 on; Go's host-local predates it
    go_answer = plugin(host_ns, GO_BIN / "host-local", "STATUS", new, cni_path=path, **CONTAINER_ENVS[envs])
    assert go_answer.code == {"none": 3, "containerid": 4, "all": 4}[envs], go_answer.out

    pods = {cid: netns_factory("pod") for cid in ("b12-keep", "b12-drop")}
    for cid, pod in pods.items():
        ok(plugin(host_ns, bridge, "ADD", conf, cni_path=path, cid=cid, netns=pod.path))
    ok(plugin(host_ns, bridge, "STATUS", new, cni_path=path, **CONTAINER_ENVS[envs]))

    netns_gone(pods["b12-drop"])
    gc = gc_conf(new, "b12-keep")
    ok(plugin(host_ns, bridge, "GC", gc, cni_path=path, **CONTAINER_ENVS[envs]))
    rules = "\n".join(leftovers(host_ns, data_dir)["iptables"])
    assert "b12-keep" in rules and "b12-drop" not in rules       # bridge's own part of GC was done
    assert len(leftovers(host_ns, data_dir)["allocations"]) == 2  # the Go host-local has no GC: nothing freed

    for cid, pod in pods.items():
        ok(plugin(host_ns, bridge, "DEL", conf, cni_path=path, cid=cid, netns=pod.path))
    assert leftovers(host_ns, data_dir) == CLEAN


def test_status_reports_missing_firewall_programs(host_ns: Netns, dist_bin: Path, tmp_path: Path) -> None:
    """Our own readiness: ADD with ipMasq or macspoofchk cannot work without iptables or nft (code 50)."""
    conf = {"cniVersion": "1.1.0", "name": "b12status", "type": "bridge", "ipam": ipam(tmp_path, "10.99.0.0/24")}
    tools = tmp_path / "no-firewall"
    tools.mkdir()
    for keys, missing in (({"ipMasq": True}, "ipMasq needs iptables-save and iptables-restore or nft"),
                          ({"ipMasq": True, "ipMasqBackend": "nftables"}, "ipMasq needs nft"),
                          ({"macspoofchk": True}, "macspoofchk needs nft")):
        answer = plugin(host_ns, dist_bin / "bridge", "STATUS", {**conf, **keys}, cni_path=dist_bin, path=str(tools))
        assert answer.code == 50 and answer.out["msg"].startswith(missing), answer.out
        ok(plugin(host_ns, dist_bin / "bridge", "STATUS", {**conf, **keys}, cni_path=dist_bin))
    ok(plugin(host_ns, dist_bin / "bridge", "STATUS", conf, cni_path=dist_bin, path=str(tools)))


# --- item 6: DEL and GC of the same stale container --------------------------------------------------------------

def race_conf(backend: str, data_dir: Path) -> dict[str, Any]:
    return bridge_conf(data_dir, name="b12race", version="1.1.0", bridge="b12ra0", subnet="10.100.0.0/16",
                       ipMasq=True, ipMasqBackend=backend, macspoofchk=True)


def stale_containers(host: Netns, make_pod: Callable[[str], Netns], dist_bin: Path, conf: dict[str, Any],
                     count: int) -> list[str]:
    """`count` containers ADDed, whose namespaces are then gone (their veths with them) without a DEL."""
    cids = [f"b12-stale-{i}" for i in range(count)]
    for cid in cids:
        pod = make_pod("pod")
        ok(plugin(host, dist_bin / "bridge", "ADD", conf, cni_path=dist_bin, cid=cid, netns=pod.path))
        netns_gone(pod)
    return cids


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_del_and_gc_of_the_same_stale_containers_at_once(backend: str, host_ns: Netns, netns_factory: Any,
                                                         dist_bin: Path, tmp_path: Path) -> None:
    conf = race_conf(backend, tmp_path / "ipam")
    cids = stale_containers(host_ns, netns_factory, dist_bin, conf, 30)
    gc = gc_conf(conf)

    def pair(cid: str) -> list[Answer]:
        with ThreadPoolExecutor(2) as both:
            calls = [both.submit(plugin, host_ns, dist_bin / "bridge", "DEL", conf, cni_path=dist_bin, cid=cid),
                     both.submit(plugin, host_ns, dist_bin / "bridge", "GC", gc, cni_path=dist_bin)]
            return [c.result() for c in calls]

    with ThreadPoolExecutor(6) as pool:
        answers = [a for pair_answers in pool.map(pair, cids) for a in pair_answers]
    assert [a.out for a in answers if a.status] == []
    assert leftovers(host_ns, tmp_path / "ipam") == CLEAN


SHIM = """#!/bin/sh
# Stands in for {tool}: a concurrent bridge {other} runs between the caller's read of the rules and its write.
script=$(cat)
case "$script" in
*"{marker}"*)
    if mkdir "{flag}" 2>/dev/null; then
        env -i PATH={path} {env} "{bridge}" <"{stdin}" >"{flag}/out" 2>&1 || echo "exit $?" >>"{flag}/out"
    fi;;
esac
printf '%s\\n' "$script" | exec "{real}" "$@"
"""


def shim(directory: Path, tool: str, *, marker: str, other: str, env: dict[str, str], bridge: Path,
         conf: dict[str, Any], flag: Path) -> None:
    """PATH entry `tool` that, the first time its stdin holds `marker`, runs bridge `other` (DEL or GC, with
    stdin `conf`) to completion, then the real tool."""
    stdin = directory / f"{other}.json"
    stdin.write_text(json.dumps(conf))
    text = SHIM.format(tool=tool, other=other, marker=marker, flag=flag, path=SYSTEM_PATH, bridge=bridge,
                       env=" ".join(f"{k}='{v}'" for k, v in env.items()), stdin=stdin,
                       real=shutil.which(tool, path=SYSTEM_PATH))
    (directory / tool).write_text(text)
    (directory / tool).chmod(0o755)


@pytest.mark.parametrize("first", ["GC-wins", "DEL-wins"])
@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_a_removal_that_lost_the_race_still_succeeds(backend: str, first: str, host_ns: Netns,
                                                      netns_factory: Any, dist_bin: Path, tmp_path: Path) -> None:
    """Forced order: the other operation removes the rules between this one's read and its write."""
    conf = race_conf(backend, tmp_path / "ipam")
    lost, other_stale = stale_containers(host_ns, netns_factory, dist_bin, conf, 2)
    gc = gc_conf(conf)
    del_env = cni_env("DEL", cid=lost, cni_path=dist_bin, path=None, CNI_ARGS=None)
    gc_env = cni_env("GC", cni_path=dist_bin, path=None, container=False)
    shims, flag = tmp_path / "shims", tmp_path / "ran"
    shims.mkdir()
    # the masquerade write: any iptables-restore script, the nft script that touches masq_checks
    tool, marker = ("iptables-restore", "*nat") if backend == "iptables" else ("nft", "masq_checks")
    if first == "GC-wins":   # our DEL reads, a GC removes everything, our DEL writes
        shim(shims, tool, marker=marker, other="GC", env=gc_env,
             bridge=dist_bin / "bridge", conf=gc, flag=flag)
        answer = plugin(host_ns, dist_bin / "bridge", "DEL", conf, cni_path=dist_bin, cid=lost,
                     path=f"{shims}:{SYSTEM_PATH}")
    else:                    # our GC reads both stale containers, a DEL removes one, our GC writes
        shim(shims, tool, marker=marker, other="DEL", env=del_env, bridge=dist_bin / "bridge", conf=conf,
             flag=flag)
        answer = plugin(host_ns, dist_bin / "bridge", "GC", gc, cni_path=dist_bin, path=f"{shims}:{SYSTEM_PATH}")
    assert flag.is_dir(), "the shim never ran"
    assert (flag / "out").read_text() == ""          # the other operation succeeded
    assert answer.status == 0, (answer.out, answer.stderr)
    # GC leaves spoof-check rules (their names carry no network to tell whose they are): DEL removes them
    ok(plugin(host_ns, dist_bin / "bridge", "DEL", conf, cni_path=dist_bin, cid=other_stale))
    assert leftovers(host_ns, tmp_path / "ipam") == CLEAN


# --- item 7: CNI_NETNS that is no namespace any more --------------------------------------------------------------

@pytest.mark.parametrize("when", ["after-a-first-del", "before-any-del"])
def test_del_with_an_unmounted_netns_file(when: str, host_ns: Netns, netns_factory: Any, dist_bin: Path,
                                          tmp_path: Path) -> None:
    data_dir = tmp_path / "ipam"
    conf = race_conf("iptables", data_dir)
    pod = netns_factory("pod")
    call = dict(cid="b12-unmounted", netns=pod.path)
    result = ok(plugin(host_ns, dist_bin / "bridge", "ADD", conf, cni_path=dist_bin, **call))
    conf = {**conf, "prevResult": result}
    try:
        if when == "after-a-first-del":
            ok(plugin(host_ns, dist_bin / "bridge", "DEL", conf, cni_path=dist_bin, **call))
        subprocess.run(["umount", pod.path], check=True)   # the namespace goes; an empty file stays
        assert os.path.isfile(pod.path) and os.path.getsize(pod.path) == 0
        for _ in range(2):
            ok(plugin(host_ns, dist_bin / "bridge", "DEL", conf, cni_path=dist_bin, **call))
            assert leftovers(host_ns, data_dir) == CLEAN
        adding = plugin(host_ns, dist_bin / "bridge", "ADD", conf, cni_path=dist_bin, **call)
        assert adding.code == 4 and "not a network namespace" in adding.out["msg"]   # ADD keeps refusing it
    finally:
        if os.path.exists(pod.path) and not os.path.ismount(pod.path):
            os.unlink(pod.path)


def test_del_with_a_directory_as_netns(host_ns: Netns, netns_factory: Any, dist_bin: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "ipam"
    conf = race_conf("nftables", data_dir)
    pod = netns_factory("pod")
    ok(plugin(host_ns, dist_bin / "bridge", "ADD", conf, cni_path=dist_bin, cid="b12-dir", netns=pod.path))
    netns_gone(pod)
    ok(plugin(host_ns, dist_bin / "bridge", "DEL", conf, cni_path=dist_bin, cid="b12-dir", netns=str(tmp_path)))
    assert leftovers(host_ns, data_dir) == CLEAN


# --- item 12: a host-local that is not ours is exec'd ---------------------------------------------------------------

def installed_copy(dist_bin: Path, work: Path) -> Path:
    """A copy of the whole install (executables and .pycni), as `make install` or an operator makes one."""
    copy = work / "cni-bin"
    shutil.copytree(dist_bin.resolve(), copy, symlinks=True)
    return copy


def execs(trace: Path) -> list[str]:
    """Programs started by the traced process tree (strace -f -e trace=execve)."""
    return [line.split('"')[1] for line in trace.read_text().splitlines() if "execve(" in line and '"' in line
            and "= 0" in line]


def traced_add(host: Netns, copy: Path, conf: dict[str, Any], pod: Netns, trace: Path, cid: str) -> Answer:
    """The copy's bridge ADD under strace, the programs it starts written to `trace`."""
    environ = cni_env("ADD", cid=cid, netns=pod.path, cni_path=copy, CNI_ARGS=None)
    argv = ["strace", "-f", "-qq", "-e", "trace=execve", "-o", str(trace), str(copy / "bridge")]
    return run(argv, environ, conf, inside=host)


def ipam_conf(data_dir: Path, version: str) -> dict[str, Any]:
    return bridge_conf(data_dir, name="b12hl", version=version, bridge="b12hl0", subnet="10.101.0.0/24")


def test_our_own_host_local_runs_in_process_also_in_a_copied_install(host_ns: Netns, netns_factory: Any,
                                                                     dist_bin: Path, tmp_path: Path) -> None:
    copy = installed_copy(dist_bin, tmp_path)
    trace = tmp_path / "trace"
    ok(traced_add(host_ns, copy, ipam_conf(tmp_path / "ipam", "1.1.0"), netns_factory("pod"), trace, "b12-own"))
    started = execs(trace)
    assert started[0] == str(copy / "bridge") and not any(p.endswith("host-local") for p in started), started


@pytest.mark.parametrize("how", ["written-over-in-place", "renamed-over"])
def test_a_wrapper_in_place_of_host_local_is_execd(how: str, host_ns: Netns, netns_factory: Any, dist_bin: Path,
                                                   tmp_path: Path) -> None:
    copy = installed_copy(dist_bin, tmp_path)
    log = tmp_path / "wrapper.log"
    wrapper = f'#!/bin/sh\necho "$CNI_COMMAND $CNI_CONTAINERID" >>"{log}"\nexec "{GO_BIN}/host-local" "$@"\n'
    target = copy / "host-local"
    inode = target.stat().st_ino
    if how == "written-over-in-place":   # same path, same inode: only the content tells
        target.write_text(wrapper)
        assert target.stat().st_ino == inode
    else:
        (copy / "host-local.new").write_text(wrapper)
        (copy / "host-local.new").chmod(0o755)
        os.rename(copy / "host-local.new", target)
    pod = netns_factory("pod")
    data_dir = tmp_path / "ipam"
    result = ok(traced_add(host_ns, copy, ipam_conf(data_dir, "1.0.0"), pod, tmp_path / "trace", "b12-wrapped"))
    assert result["ips"][0]["address"].startswith("10.101.0.")
    assert log.read_text() == "ADD b12-wrapped\n"
    assert str(target) in execs(tmp_path / "trace")
    ok(plugin(host_ns, copy / "bridge", "DEL", {**ipam_conf(data_dir, "1.0.0"), "prevResult": result},
           cni_path=copy, cid="b12-wrapped", netns=pod.path))
    assert log.read_text() == "ADD b12-wrapped\nDEL b12-wrapped\n"
    assert leftovers(host_ns, data_dir) == CLEAN


def test_the_go_host_local_copied_over_ours_is_execd(host_ns: Netns, netns_factory: Any, dist_bin: Path,
                                                     tmp_path: Path) -> None:
    copy = installed_copy(dist_bin, tmp_path)
    target = copy / "host-local"
    inode = target.stat().st_ino
    with open(GO_BIN / "host-local", "rb") as go, open(target, "wb") as ours:   # cp over it: same inode
        shutil.copyfileobj(go, ours)
    assert target.stat().st_ino == inode
    pod = netns_factory("pod")
    # only spec <= 1.0.0 in Go's 1.1.1: its answer to a 1.1.0 config shows it was the one that ran
    answer = plugin(host_ns, copy / "bridge", "ADD", ipam_conf(tmp_path / "ipam", "1.1.0"), cni_path=copy,
                 cid="b12-go", netns=pod.path)
    assert answer.code == 1 and "incompatible CNI versions" in answer.out["msg"], answer.out
    ok(plugin(host_ns, copy / "bridge", "ADD", ipam_conf(tmp_path / "ipam", "1.0.0"), cni_path=copy, cid="b12-go",
           netns=pod.path))
