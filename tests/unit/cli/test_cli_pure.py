"""pycni's pure parts, no root: `network create`'s flags -> conflist and its refusals (no file written), -p parsing,
tables, and the chain's libcni-style config injection and cache (a fake plugin script records its stdin)."""
from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest

from pycni import cleanup, networks, ports, table
from pycni.app import main
from pycni.chain import Chain, ConfList, Runtime
from pycni.errors import PluginError, UserError
from pycni.runs import RunOptions, Runs


def create(tmp_path: Path, *flags: str) -> int:
    return main(["--conf-dir", str(tmp_path / "net.d"), "network", "create", *flags])


def test_create_writes_the_conflist(tmp_path: Path) -> None:
    assert create(tmp_path, "n1", "--subnet", "10.1.0.0/16", "--ip-range", "10.1.2.0/24", "--gateway", "10.1.0.254",
                  "--subnet", "fd00:1::/64", "--mtu", "1400", "--internal") == 0
    conf = json.loads((tmp_path / "net.d" / "n1.conflist").read_text())
    bridge = conf["plugins"][0]
    assert bridge["bridge"] == "pycni-n1" and bridge["mtu"] == 1400 and bridge["ipMasq"] is False
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.1.0.0/16", "rangeStart": "10.1.2.0", "rangeEnd": "10.1.2.255",
                                          "gateway": "10.1.0.254"}], [{"subnet": "fd00:1::/64"}]]
    assert "routes" not in bridge["ipam"] and conf["plugins"][1]["capabilities"] == {"portMappings": True}
    assert conf["plugins"][2] == {"type": "firewall"}
    assert [p.name for p in (tmp_path / "net.d").iterdir()] == ["n1.conflist"]


def test_isolate_sets_the_firewall_ingress_policy(tmp_path: Path) -> None:
    assert create(tmp_path, "n2", "--subnet", "10.2.0.0/24", "--isolate") == 0
    conf = json.loads((tmp_path / "net.d" / "n2.conflist").read_text())
    assert [p["type"] for p in conf["plugins"]] == ["bridge", "portmap", "firewall"]
    assert conf["plugins"][2] == {"type": "firewall", "ingressPolicy": "same-bridge"}


def test_overlay_driver_writes_the_example_conflist(tmp_path: Path) -> None:
    """conf-examples/overlay/10-overlay.conflist for this name, with its own bridge and dataDir."""
    assert create(tmp_path, "ov", "--driver", "overlay", "--isolate", "--ipam-dir", str(tmp_path / "ipam"),
                  "--subnet-file", str(tmp_path / "subnet.env")) == 0
    path = tmp_path / "net.d" / "ov.conflist"
    conf = json.loads(path.read_text())
    assert conf == {"cniVersion": "1.0.0", "name": "ov", "plugins": [
        {"type": "overlay", "subnetFile": str(tmp_path / "subnet.env"), "dataDir": "/var/lib/cni/pycni-overlay/ov",
         "delegate": {"bridge": "pycni-ov", "hairpinMode": True, "isDefaultGateway": True},
         "capabilities": {"mac": True}, "ipam": {"dataDir": str(tmp_path / "ipam")}},
        {"type": "portmap", "capabilities": {"portMappings": True}},
        {"type": "firewall", "ingressPolicy": "same-bridge"}]}
    conflist = networks.read(path)
    assert networks.driver(conflist) == "overlay" and networks.bridge_name(conflist) == "pycni-ov"
    assert networks.ipam_dir(conflist) == tmp_path / "ipam" / "ov" and networks.subnets(conflist) == []
    assert create(tmp_path, "ov2", "--driver", "overlay") == 0          # defaults: the example's paths
    plugin = json.loads((tmp_path / "net.d" / "ov2.conflist").read_text())["plugins"][0]
    assert plugin["subnetFile"] == "/run/pycni/subnet.env" and plugin["ipam"] == {"dataDir": "/run/cni/networks"}
    assert json.loads((tmp_path / "net.d" / "ov2.conflist").read_text())["plugins"][2] == {"type": "firewall"}
    assert create(tmp_path, "ov3", "--driver", "overlay", "--bridge", "pycni-ov") == 1     # the bridge is taken


@pytest.mark.parametrize(("flags", "message"), [
    (["bad/name", "--subnet", "10.0.0.0/24"], "invalid network name 'bad/name'"),
    (["n", "--subnet", "10.0.0.0/33"], "invalid --subnet '10.0.0.0/33'"),
    (["n", "--subnet", "10.0.0.1/24"], "host bits are set (did you mean 10.0.0.0/24?)"),
    (["n"], "--subnet is required"),
    (["n", "--subnet", "10.0.0.0/24", "--ip-range", "10.9.0.0/28"], "--ip-range '10.9.0.0/28' is in none"),
    (["n", "--subnet", "10.0.0.0/24", "--gateway", "10.0.0.255"], "broadcast address"),
    (["n", "--subnet", "10.0.0.0/24", "--subnet", "10.0.0.128/25"], "overlaps --subnet 10.0.0.0/24"),
    (["n", "--subnet", "10.0.0.0/24", "--driver", "overlay"], "--subnet does not apply to --driver overlay"),
    (["n", "--driver", "overlay", "--mtu", "1400"], "--mtu does not apply to --driver overlay"),
    (["n", "--driver", "overlay", "--internal"], "--internal does not apply to --driver overlay"),
    (["n", "--subnet", "10.0.0.0/24", "--subnet-file", "/x"], "--subnet-file is for --driver overlay only"),
    (["n", "--subnet", "10.0.0.0/24", "--driver", "macvlan"], "invalid --driver 'macvlan'"),
    (["n", "--subnet", "10.0.0.0/24", "--mtu", "20"], "invalid --mtu 20"),
    (["n", "--subnet", "10.0.0.0/24", "--bridge", "much-too-long-name"], "invalid --bridge 'much-too-long-name'"),
])
def test_create_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str) -> None:
    assert create(tmp_path, *flags) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "net.d").exists() or list((tmp_path / "net.d").iterdir()) == []


def test_create_refuses_overlap_and_duplicates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert create(tmp_path, "a", "--subnet", "10.0.0.0/16") == 0
    assert create(tmp_path, "b", "--subnet", "10.0.5.0/24") == 1
    assert "overlaps 10.0.0.0/16 of network 'a'" in capsys.readouterr().err
    assert create(tmp_path, "a", "--subnet", "10.9.0.0/16") == 1
    assert "a network named 'a' already exists" in capsys.readouterr().err
    assert create(tmp_path, "c", "--subnet", "10.9.0.0/16", "--bridge", "pycni-a") == 1
    assert "--bridge 'pycni-a' is already the bridge of network 'a'" in capsys.readouterr().err


@pytest.mark.parametrize(("spec", "mapping"), [
    ("8080:80", {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}),
    ("127.0.0.1:53:5353/UDP", {"hostPort": 53, "containerPort": 5353, "protocol": "udp", "hostIP": "127.0.0.1"}),
    ("[::1]:8443:443/sctp", {"hostPort": 8443, "containerPort": 443, "protocol": "sctp", "hostIP": "::1"}),
])
def test_ports(spec: str, mapping: dict[str, object]) -> None:
    assert ports.parse(spec) == mapping


@pytest.mark.parametrize(("spec", "message"), [
    ("80", "expected [HOSTIP:]HOSTPORT:PORT"), ("70000:80", "invalid host port '70000'"),
    ("80:80/icmp", "invalid protocol 'icmp'"), ("x.y:80:80", "invalid host IP 'x.y'"),
])
def test_port_refusals(spec: str, message: str) -> None:
    with pytest.raises(UserError) as info:
        ports.parse(spec)
    assert message in str(info.value)


@pytest.mark.parametrize(("spec", "network", "mapping"), [
    ("8080:80", None, {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}),
    ("net2=127.0.0.1:53:53/udp", "net2", {"hostPort": 53, "containerPort": 53, "protocol": "udp",
                                           "hostIP": "127.0.0.1"}),
])
def test_publish_qualified(spec: str, network: str | None, mapping: dict[str, object]) -> None:
    assert ports.publish(spec) == (network, mapping)
    assert ports.qualified("net2=02:00:00:00:00:01", "--mac") == ("net2", "02:00:00:00:00:01")
    assert ports.qualified("02:00:00:00:00:01", "--mac") == (None, "02:00:00:00:00:01")
    with pytest.raises(UserError, match="invalid network name 'a b' in -p"):
        ports.publish("a b=80:80")


def _two_networks(tmp_path: Path) -> Runs:
    for name, subnet in (("n1", "10.1.0.0/24"), ("n2", "10.2.0.0/24")):
        assert create(tmp_path, name, "--subnet", subnet) == 0
    return Runs(Chain([], tmp_path / "cache"), tmp_path / "net.d", tmp_path / "state")


def test_capabilities_per_network(tmp_path: Path) -> None:
    """-p/--mac unqualified: the first --network; NETWORK=...: that one; --ip: the network whose subnet holds it."""
    runs = _two_networks(tmp_path)
    opts = RunOptions(name=None, networks=["n1", "n2"], ips=["10.2.0.9"], command=["true"],
                      ports=[(None, {"hostPort": 80, "containerPort": 80, "protocol": "tcp"}),
                             ("n2", {"hostPort": 81, "containerPort": 8081, "protocol": "tcp"})],
                      macs=[("n2", "02:00:00:00:00:02"), (None, "02:00:00:00:00:01")])
    mode, conflists = runs._check(opts)
    assert mode == "new" and [c.name for c in conflists] == ["n1", "n2"]
    assert runs._capabilities(0, conflists[0], opts) == {
        "portMappings": [{"hostPort": 80, "containerPort": 80, "protocol": "tcp"}], "mac": "02:00:00:00:00:01"}
    assert runs._capabilities(1, conflists[1], opts) == {
        "portMappings": [{"hostPort": 81, "containerPort": 8081, "protocol": "tcp"}], "ips": ["10.2.0.9"],
        "mac": "02:00:00:00:00:02"}


@pytest.mark.parametrize(("networks_", "ports_", "macs", "message"), [
    (["n1"], [("n3", {"hostPort": 1, "containerPort": 1, "protocol": "tcp"})], [], "-p n3=...: 'n3' is not one of"),
    (["n1", "n2"], [], [("n1", "02:00:00:00:00:01"), (None, "02:00:00:00:00:02")], "--mac: 2 MACs for network 'n1'"),
    (["n1"], [], [("n2", "02:00:00:00:00:01")], "--mac n2=...: 'n2' is not one of the --network values (n1)"),
])
def test_capability_refusals(tmp_path: Path, networks_: list[str], ports_: list[tuple[str | None, dict[str, object]]],
                             macs: list[tuple[str | None, str]], message: str) -> None:
    runs = _two_networks(tmp_path)
    with pytest.raises(UserError) as info:
        runs._check(RunOptions(name=None, networks=networks_, ports=ports_, ips=[], macs=macs, command=["true"]))
    assert message in str(info.value)


def test_table_lines_up() -> None:
    assert table.render(["A", "BB"], [["long", "x"], ["s", "yy"]]) == "A     BB\nlong  x\ns     yy\n"


FAKE = """#!/bin/sh
cat > "{dir}/$CNI_COMMAND-{name}.json"
echo "$CNI_CONTAINERID $CNI_IFNAME $CNI_NETNS" > "{dir}/$CNI_COMMAND-{name}.env"
[ "$CNI_COMMAND" = ADD ] && [ -e "{dir}/fail-{name}" ] && {{ echo '{{"code":7,"msg":"no"}}'; exit 1; }}
[ "$CNI_COMMAND" = ADD ] && echo '{{"cniVersion":"1.0.0","ips":[{{"address":"10.0.0.{n}/24"}}]}}'
exit 0
"""


def fake_chain(tmp_path: Path) -> tuple[Chain, ConfList]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for n, name in enumerate(("first", "second"), 1):
        path = bin_dir / name
        path.write_text(FAKE.format(dir=tmp_path, name=name, n=n))
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    raw = json.dumps({"cniVersion": "1.0.0", "name": "net", "plugins": [
        {"type": "first", "capabilities": {"ips": True}, "runtimeConfig": {"old": 1}},
        {"type": "second", "capabilities": {"portMappings": True, "mac": False}}]}).encode()
    return Chain([str(tmp_path / "nowhere"), str(bin_dir)], tmp_path / "cache"), ConfList.from_bytes(raw)


def test_chain_like_libcni(tmp_path: Path) -> None:
    chain, conflist = fake_chain(tmp_path)
    rt = Runtime("c1", "/run/netns/x", "eth0", capability_args={"ips": ["10.0.0.9"], "portMappings": [1],
                                                                  "mac": "m"})
    result = chain.add(conflist, rt)
    first = json.loads((tmp_path / "ADD-first.json").read_text())
    second = json.loads((tmp_path / "ADD-second.json").read_text())
    assert first == {"type": "first", "name": "net", "cniVersion": "1.0.0", "capabilities": {"ips": True},
                     "runtimeConfig": {"ips": ["10.0.0.9"]}}
    assert second["prevResult"]["ips"][0]["address"] == "10.0.0.1/24"        # the first plugin's result
    assert result["ips"][0]["address"] == "10.0.0.2/24"                      # the chain's: the last one's
    assert second["runtimeConfig"] == {"portMappings": [1]}
    entry = json.loads((tmp_path / "cache" / "results" / "net-c1-eth0").read_text())
    assert list(entry) == ["kind", "containerId", "config", "ifName", "networkName", "capabilityArgs", "result"]
    assert base64.b64decode(entry["config"]) == conflist.raw and entry["result"]["ips"][0]["address"] == "10.0.0.2/24"
    chain.delete(conflist, rt)
    assert json.loads((tmp_path / "DEL-first.json").read_text())["prevResult"] == entry["result"]
    assert (tmp_path / "DEL-first.env").read_text().split() == ["c1", "eth0", "/run/netns/x"]
    assert not (tmp_path / "cache" / "results" / "net-c1-eth0").exists()


def test_failed_add_runs_del(tmp_path: Path) -> None:
    chain, conflist = fake_chain(tmp_path)
    (tmp_path / "fail-second").touch()
    with pytest.raises(PluginError, match="code 7: no"):
        chain.add_or_undo(conflist, Runtime("c1", "/run/netns/x", "eth0"))
    assert (tmp_path / "DEL-first.json").exists() and (tmp_path / "DEL-second.json").exists()
    assert "prevResult" not in json.loads((tmp_path / "DEL-first.json").read_text())
    assert not (tmp_path / "cache" / "results" / "net-c1-eth0").exists()


def test_parse_valid() -> None:
    assert cleanup.parse_valid(["c1", "c2/eth1"]) == [("c1", None), ("c2", "eth1")]
    for bad in ("c1/", "-x", "c1/eth0/x", ""):
        with pytest.raises(UserError, match="invalid --valid"):
            cleanup.parse_valid([bad])


def _entry(tmp_path: Path, network: str, cid: str, ifname: str, netns: str) -> None:
    results = tmp_path / "cache" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / f"{network}-{cid}-{ifname}").write_text(json.dumps({
        "kind": "cniCacheV1", "containerId": cid, "ifName": ifname, "networkName": network, "config": "",
        "result": {"interfaces": [{"name": "veth1"}, {"name": ifname, "sandbox": netns}]}}))


def test_gc_plan(tmp_path: Path) -> None:
    """Stale: netns gone, or not in --valid (unless a pycni run owns it); the rest is each network's valid list."""
    alive = tmp_path / "netns-alive"
    alive.touch()
    _entry(tmp_path, "a", "c1", "eth0", str(alive))
    _entry(tmp_path, "a", "c2", "eth0", str(tmp_path / "gone"))
    _entry(tmp_path, "a", "c3", "eth0", str(alive))
    _entry(tmp_path, "b", "c1", "eth1", str(alive))
    _entry(tmp_path, "b", "run1", "eth0", str(alive))
    plan = cleanup.plan(tmp_path / "cache", set(), None, None)
    assert [(e["containerId"], why) for e, why in plan.stale] == [("c2", f"its netns {tmp_path / 'gone'} is gone")]
    assert plan.valid["a"] == [{"containerID": "c1", "ifname": "eth0"}, {"containerID": "c3", "ifname": "eth0"}]
    plan = cleanup.plan(tmp_path / "cache", {"run1"}, None, [("c1", None)])
    assert sorted((e["networkName"], e["containerId"], why.split()[-1]) for e, why in plan.stale) == [
        ("a", "c2", "gone"), ("a", "c3", "--valid")]
    assert plan.valid == {"a": [{"containerID": "c1", "ifname": "eth0"}],
                          "b": [{"containerID": "c1", "ifname": "eth1"}, {"containerID": "run1", "ifname": "eth0"}]}
    plan = cleanup.plan(tmp_path / "cache", set(), "b", [("c1", "eth0")])
    assert sorted(e["containerId"] for e, _ in plan.stale) == ["c1", "run1"] and plan.valid == {}


GC_FAKE = """#!/bin/sh
if [ "$CNI_COMMAND" = VERSION ]; then echo '{{"cniVersion":"1.1.0","supportedVersions":{versions}}}'; exit 0; fi
cat > "{dir}/$CNI_COMMAND-{name}.json"
env | grep '^CNI_' | sort > "{dir}/$CNI_COMMAND-{name}.env"
[ -e "{dir}/fail-{name}" ] && {{ echo '{{"code":11,"msg":"gc failed"}}'; exit 1; }}
exit 0
"""


def test_chain_gc_like_libcni(tmp_path: Path) -> None:
    """GC: name, cniVersion (1.1.0 for a 1.0.0 list), both valid-attachments keys, empty container env; a plugin
    whose VERSION lacks 1.1.0 gets none; a failure is reported and the rest still run; disableGC sends nothing."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, versions in (("new", '["1.0.0","1.1.0"]'), ("old", '["0.4.0","1.0.0"]'), ("last", '["1.1.0"]')):
        path = bin_dir / name
        path.write_text(GC_FAKE.format(dir=tmp_path, name=name, versions=versions))
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    chain = Chain([str(bin_dir)], tmp_path / "cache")
    raw = json.dumps({"cniVersion": "1.0.0", "name": "net", "plugins": [
        {"type": "new", "runtimeConfig": {"x": 1}}, {"type": "old"}, {"type": "last"}]}).encode()
    valid = [{"containerID": "c1", "ifname": "eth0"}]
    lines, ok = chain.gc(ConfList.from_bytes(raw), valid)
    assert ok and lines == ["new: GC done", "old: no GC (its VERSION lists no 1.1.0)", "last: GC done"]
    conf = json.loads((tmp_path / "GC-new.json").read_text())
    assert conf == {"type": "new", "name": "net", "cniVersion": "1.1.0", "runtimeConfig": {"x": 1},
                    "cni.dev/valid-attachments": valid, "cni.dev/attachments": valid}
    env = dict(line.split("=", 1) for line in (tmp_path / "GC-new.env").read_text().splitlines())
    assert env["CNI_COMMAND"] == "GC" and env["CNI_CONTAINERID"] == env["CNI_NETNS"] == env["CNI_IFNAME"] == ""
    assert env["CNI_PATH"] == str(bin_dir) and not (tmp_path / "GC-old.json").exists()
    (tmp_path / "fail-new").touch()
    lines, ok = chain.gc(ConfList.from_bytes(raw), [])
    assert not ok and "code 11: gc failed" in lines[0] and lines[2] == "last: GC done"
    (tmp_path / "GC-last.json").unlink()
    off = json.dumps({"cniVersion": "1.1.0", "name": "net", "disableGC": True, "plugins": [{"type": "last"}]})
    assert chain.gc(ConfList.from_bytes(off.encode()), []) == (["disableGC is set: no GC"], True)
    assert not (tmp_path / "GC-last.json").exists()
