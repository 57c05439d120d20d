"""pycni's pure parts, no root: `network create`'s flags -> conflist and its refusals (no file written), -p parsing,
tables, and the chain's libcni-style config injection and cache (a fake plugin script records its stdin)."""
from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest

from pycni import ports, table
from pycni.app import main
from pycni.chain import Chain, ConfList, Runtime
from pycni.errors import PluginError, UserError


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
    assert [p.name for p in (tmp_path / "net.d").iterdir()] == ["n1.conflist"]


@pytest.mark.parametrize(("flags", "message"), [
    (["bad/name", "--subnet", "10.0.0.0/24"], "invalid network name 'bad/name'"),
    (["n", "--subnet", "10.0.0.0/33"], "invalid --subnet '10.0.0.0/33'"),
    (["n", "--subnet", "10.0.0.1/24"], "host bits are set (did you mean 10.0.0.0/24?)"),
    (["n"], "--subnet is required"),
    (["n", "--subnet", "10.0.0.0/24", "--ip-range", "10.9.0.0/28"], "--ip-range '10.9.0.0/28' is in none"),
    (["n", "--subnet", "10.0.0.0/24", "--gateway", "10.0.0.255"], "broadcast address"),
    (["n", "--subnet", "10.0.0.0/24", "--subnet", "10.0.0.128/25"], "overlaps --subnet 10.0.0.0/24"),
    (["n", "--subnet", "10.0.0.0/24", "--driver", "overlay"], "--driver overlay is not implemented yet"),
    (["n", "--subnet", "10.0.0.0/24", "--driver", "macvlan"], "invalid --driver 'macvlan'"),
    (["n", "--subnet", "10.0.0.0/24", "--isolate"], "--isolate is not implemented yet"),
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
