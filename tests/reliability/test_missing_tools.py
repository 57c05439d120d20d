"""Missing system tools: PATH is a directory of symlinks to every program except iptables*/nft. A config that
needs them fails with a clear error naming the tool and the config key; a config that does not need them works."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from support import (
    Answer,
    Netns,
    allocations,
    bridge_conf,
    cni_env,
    container_rules,
    firewall_state,
    ok,
    plugin_argv,
    portmap_conf,
    run,
    spec_error,
    tool_dir,
    veths,
)

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
def invoke(tmp_path: Path, dist_bin: Path, host_ns: Netns,
           netns_factory: Callable[[str], Netns]) -> Callable[..., Answer]:
    """invoke(plugin, command, conf, missing): the built plugin in the node, for a pod, with a PATH that lacks
    CASES[missing]."""
    pod = netns_factory("pod")

    def invoke(plugin: str, command: str, conf: dict[str, Any], missing: str) -> Answer:
        path = tool_dir(tmp_path / f"tools-{missing}", drop=CASES[missing])
        env = cni_env(command, cid="pod-c1", netns=pod.path, cni_path=dist_bin, path=path)
        return run(plugin_argv(plugin, dist_bin), env, conf, inside=host_ns)
    return invoke


@pytest.mark.parametrize("missing", list(CASES))
@pytest.mark.parametrize("backend", [None, "iptables", "nftables"])
def test_bridge_ipmasq(dist_bin: Path, host_ns: Any, tmp_path: Path, invoke: Callable[..., Answer],
                       missing: str, backend: str | None) -> None:
    extra = {"ipMasqBackend": backend} if backend else {}
    conf = bridge_conf(tmp_path / "data", isGateway=True, ipMasq=True, **extra)
    before = firewall_state(host_ns)
    done = invoke("bridge", "ADD", conf, missing)
    needed = {None: "nft" if missing == "neither" else None, "iptables": "iptables" if missing != "no-nft" else None,
              "nftables": "nft" if missing != "no-iptables" else None}[backend]
    if needed is None:                  # the backend in use is installed (or the automatic choice found one)
        ok(done)
    else:
        error = spec_error(done)
        assert needed in error["msg"], error
        assert ("ipMasqBackend" if backend else "ipMasq") in error["msg"], error
        assert veths(host_ns) == [] and allocations(tmp_path / "data") == []
        assert firewall_state(host_ns) == before
    ok(invoke("bridge", "DEL", conf, missing))
    assert veths(host_ns) == [] and allocations(tmp_path / "data") == []


@pytest.mark.parametrize("missing", list(CASES))
def test_bridge_without_ipmasq_needs_no_firewall_tool(dist_bin: Path, host_ns: Any, tmp_path: Path,
                                                      invoke: Callable[..., Answer], missing: str) -> None:
    conf = bridge_conf(tmp_path / "data", isGateway=True, ipMasq=False)
    assert ok(invoke("bridge", "ADD", conf, missing))["ips"]
    ok(invoke("bridge", "DEL", conf, missing))
    assert veths(host_ns) == [] and allocations(tmp_path / "data") == []


@pytest.mark.parametrize("missing", list(CASES))
@pytest.mark.parametrize("backend", [None, "iptables", "nftables"])
def test_portmap(dist_bin: Path, host_ns: Any, invoke: Callable[..., Answer], missing: str,
                 backend: str | None) -> None:
    extra = {"backend": backend} if backend else {}
    conf = portmap_conf(WEB, **extra)
    before = firewall_state(host_ns)
    done = invoke("portmap", "ADD", conf, missing)
    needed = {None: "nft" if missing == "neither" else None, "iptables": "iptables" if missing != "no-nft" else None,
              "nftables": "nft" if missing != "no-iptables" else None}[backend]
    if needed is None:
        ok(done)
    else:
        error = spec_error(done)
        assert needed in error["msg"] and "backend" in error["msg"], error
        assert firewall_state(host_ns) == before
    del_done = invoke("portmap", "DEL", conf, missing)
    if needed is None:
        ok(del_done)
    else:                               # DEL cannot look without the tool either: the same clear error
        error = spec_error(del_done)
        assert needed in error["msg"] and "backend" in error["msg"], error
    assert container_rules(host_ns, "pod-c1") == []


@pytest.mark.parametrize("missing", list(CASES))
def test_portmap_without_mappings_needs_no_firewall_tool(dist_bin: Path, host_ns: Any,
                                                         invoke: Callable[..., Answer], missing: str) -> None:
    conf = portmap_conf([])
    result = ok(invoke("portmap", "ADD", conf, missing))
    assert result["ips"] == conf["prevResult"]["ips"]
    ok(invoke("portmap", "DEL", conf, missing))


def firewall_conf(backend: str | None, **keys: Any) -> dict[str, Any]:
    conf = {"cniVersion": "1.1.0", "name": "pfw-tools", "type": "firewall",
            "prevResult": {"cniVersion": "1.1.0", "interfaces": [{"name": "relbr0"}],
                           "ips": [{"address": "10.77.0.5/24"}]}, **keys}
    return {**conf, "backend": backend} if backend else conf


@pytest.mark.parametrize("missing", list(CASES))
@pytest.mark.parametrize("backend", [None, "iptables", "nftables"])
def test_firewall(dist_bin: Path, host_ns: Any, invoke: Callable[..., Answer], missing: str,
                  backend: str | None) -> None:
    conf = firewall_conf(backend)
    before = firewall_state(host_ns)
    needed = {None: "nft" if missing == "neither" else None, "iptables": "iptables" if missing != "no-nft" else None,
              "nftables": "nft" if missing != "no-iptables" else None}[backend]
    done = invoke("firewall", "ADD", conf, missing)
    status = invoke("firewall", "STATUS", {k: v for k, v in conf.items() if k != "prevResult"}, missing)
    if needed is None:
        assert ok(done)["ips"] == conf["prevResult"]["ips"]
        assert ok(status) is None
    else:
        error = spec_error(done)
        assert needed in error["msg"] and "backend" in error["msg"], error
        assert firewall_state(host_ns) == before
        assert spec_error(status, 50)
    ok(invoke("firewall", "DEL", conf, missing))      # also when the tool is missing: nothing of ours can be there
    assert "10.77.0.5" not in firewall_state(host_ns)
