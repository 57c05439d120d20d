"""Missing system tools: PATH is a directory of symlinks to every program except iptables*/nft. A config that
needs them fails with a clear error naming the tool and the config key; a config that does not need them works."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest

from reliability_support import (allocations, bridge_conf, container_rules, firewall_state, ok, plugin_env, portmap_conf, run,
                                 spec_error, tool_dir, veths)

pytestmark = pytest.mark.e2e

IPTABLES = ("iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save", "ip6tables-restore",
            "iptables-legacy", "iptables-nft", "iptables-legacy-save", "iptables-legacy-restore", "iptables-nft-save",
            "iptables-nft-restore", "ip6tables-legacy", "ip6tables-nft", "ip6tables-legacy-save",
            "ip6tables-legacy-restore", "ip6tables-nft-save", "ip6tables-nft-restore", "xtables-nft-multi",
            "xtables-legacy-multi")
NFT = ("nft",)
CASES = {"no-iptables": IPTABLES, "no-nft": NFT, "neither": IPTABLES + NFT}
WEB = [{"hostPort": 8080, "containerPort": 80}]


@pytest.fixture
def env_for(tmp_path: Path, dist_bin: Path, netns_factory: Callable[[str], Any]) -> Callable[..., dict[str, str]]:
    pod = netns_factory("pod")

    def make(command: str, missing: str, cid: str = "pod-c1") -> dict[str, str]:
        path = tool_dir(tmp_path / f"tools-{missing}", drop=CASES[missing])
        return plugin_env(command, cid=cid, netns=pod.path, cni_path=str(dist_bin), path=path)
    return make


@pytest.mark.parametrize("missing", list(CASES))
@pytest.mark.parametrize("backend", [None, "iptables", "nftables"])
def test_bridge_ipmasq(dist_bin: Path, host_ns: Any, tmp_path: Path, env_for: Callable[..., dict[str, str]],
                       missing: str, backend: str | None) -> None:
    extra = {"ipMasqBackend": backend} if backend else {}
    conf = bridge_conf(tmp_path / "data", **extra)
    before = firewall_state(host_ns.path)
    done = run("bridge", conf, env_for("ADD", missing), dist_bin=dist_bin, netns_path=host_ns.path)
    needed = {None: "nft" if missing == "neither" else None, "iptables": "iptables" if missing != "no-nft" else None,
              "nftables": "nft" if missing != "no-iptables" else None}[backend]
    if needed is None:                  # the backend in use is installed (or the automatic choice found one)
        ok(done)
    else:
        error = spec_error(done)
        assert needed in error["msg"], error
        assert ("ipMasqBackend" if backend else "ipMasq") in error["msg"], error
        assert veths(host_ns.path) == [] and allocations(tmp_path / "data") == []
        assert firewall_state(host_ns.path) == before
    ok(run("bridge", conf, env_for("DEL", missing), dist_bin=dist_bin, netns_path=host_ns.path))
    assert veths(host_ns.path) == [] and allocations(tmp_path / "data") == []


@pytest.mark.parametrize("missing", list(CASES))
def test_bridge_without_ipmasq_needs_no_firewall_tool(dist_bin: Path, host_ns: Any, tmp_path: Path,
                                                      env_for: Callable[..., dict[str, str]], missing: str) -> None:
    conf = bridge_conf(tmp_path / "data", ip_masq=False)
    assert ok(run("bridge", conf, env_for("ADD", missing), dist_bin=dist_bin, netns_path=host_ns.path))["ips"]
    ok(run("bridge", conf, env_for("DEL", missing), dist_bin=dist_bin, netns_path=host_ns.path))
    assert veths(host_ns.path) == [] and allocations(tmp_path / "data") == []


@pytest.mark.parametrize("missing", list(CASES))
@pytest.mark.parametrize("backend", [None, "iptables", "nftables"])
def test_portmap(dist_bin: Path, host_ns: Any, env_for: Callable[..., dict[str, str]], missing: str,
                 backend: str | None) -> None:
    extra = {"backend": backend} if backend else {}
    conf = portmap_conf(WEB, **extra)
    before = firewall_state(host_ns.path)
    done = run("portmap", conf, env_for("ADD", missing), dist_bin=dist_bin, netns_path=host_ns.path)
    needed = {None: "nft" if missing == "neither" else None, "iptables": "iptables" if missing != "no-nft" else None,
              "nftables": "nft" if missing != "no-iptables" else None}[backend]
    if needed is None:
        ok(done)
    else:
        error = spec_error(done)
        assert needed in error["msg"] and "backend" in error["msg"], error
        assert firewall_state(host_ns.path) == before
    del_done = run("portmap", conf, env_for("DEL", missing), dist_bin=dist_bin, netns_path=host_ns.path)
    if needed is None:
        ok(del_done)
    else:                               # DEL cannot look without the tool either: the same clear error
        error = spec_error(del_done)
        assert needed in error["msg"] and "backend" in error["msg"], error
    assert container_rules(host_ns.path, "pod-c1") == []


@pytest.mark.parametrize("missing", list(CASES))
def test_portmap_without_mappings_needs_no_firewall_tool(dist_bin: Path, host_ns: Any,
                                                         env_for: Callable[..., dict[str, str]], missing: str) -> None:
    conf = portmap_conf([])
    result = ok(run("portmap", conf, env_for("ADD", missing), dist_bin=dist_bin, netns_path=host_ns.path))
    assert result["ips"] == conf["prevResult"]["ips"]
    ok(run("portmap", conf, env_for("DEL", missing), dist_bin=dist_bin, netns_path=host_ns.path))
