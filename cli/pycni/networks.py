"""Networks are conflists in --conf-dir, found by their "name" as libcni finds them (the .conflist files in name
order, then single .conf/.json configs, up-converted). `network create` writes <NAME>.conflist: bridge + host-local
+ portmap + firewall, with the capabilities `--ip`, `--mac` and `-p` need (`--driver overlay`: overlay + portmap +
firewall, as conf-examples/overlay/10-overlay.conflist)."""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import netaddr

from .chain import ConfList
from .errors import UserError

CNI_VERSION = "1.0.0"
_VALID_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$")
DEFAULT_IPAM_DIR = "/var/lib/cni/networks"


def conf_files(conf_dir: Path) -> list[Path]:
    try:
        names = sorted(os.listdir(conf_dir))
    except FileNotFoundError:
        return []
    lists = [conf_dir / n for n in names if n.endswith(".conflist") and (conf_dir / n).is_file()]
    singles = [conf_dir / n for n in names if n.endswith((".conf", ".json")) and (conf_dir / n).is_file()]
    return lists + singles


def read(path: Path) -> ConfList:
    raw = path.read_bytes()
    if path.suffix == ".conflist":
        return ConfList.from_bytes(raw, path)
    try:
        single = json.loads(raw)
    except ValueError as e:
        raise UserError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(single, dict):
        raise UserError(f"{path} is not a network config")
    wrapped = {"cniVersion": single.get("cniVersion", ""), "name": single.get("name", ""), "plugins": [single]}
    return ConfList.from_bytes(json.dumps(wrapped).encode(), path)


def all_networks(conf_dir: Path) -> list[ConfList]:
    """Every readable network, the first of each name (libcni's choice); broken files are skipped."""
    seen: dict[str, ConfList] = {}
    for path in conf_files(conf_dir):
        try:
            conflist = read(path)
        except (UserError, OSError):
            continue
        seen.setdefault(conflist.name, conflist)
    return list(seen.values())


def load(conf_dir: Path, name: str) -> ConfList:
    for conflist in all_networks(conf_dir):
        if conflist.name == name:
            return conflist
    known = ", ".join(sorted(c.name for c in all_networks(conf_dir))) or "none"
    raise UserError(f"no network named {name!r} in --conf-dir {str(conf_dir)!r} (networks: {known})")


# --- facts about a conflist -------------------------------------------------------------------------------------
def ranges(conflist: ConfList) -> list[dict[str, Any]]:
    """Every host-local range of the network: {subnet, rangeStart?, rangeEnd?, gateway?}."""
    found: list[dict[str, Any]] = []
    for plugin in conflist.plugins:
        ipam = plugin.get("ipam") or {}
        if not isinstance(ipam, dict):
            continue
        for rangeset in ipam.get("ranges") or []:
            found.extend(r for r in rangeset if isinstance(r, dict) and "subnet" in r)
        if "subnet" in ipam:
            found.append({k: ipam[k] for k in ("subnet", "rangeStart", "rangeEnd", "gateway") if k in ipam})
    return found


def subnets(conflist: ConfList) -> list[netaddr.IPNetwork]:
    nets = []
    for r in ranges(conflist):
        try:
            nets.append(netaddr.IPNetwork(r["subnet"]).cidr)
        except (netaddr.AddrFormatError, ValueError, TypeError):
            continue
    return nets


def gateways(conflist: ConfList) -> list[str]:
    out = []
    for r in ranges(conflist):
        if r.get("gateway"):
            out.append(str(r["gateway"]))
        else:
            try:
                out.append(str(netaddr.IPAddress(netaddr.IPNetwork(r["subnet"]).cidr.first + 1,
                                                 netaddr.IPNetwork(r["subnet"]).version)))
            except (netaddr.AddrFormatError, ValueError, TypeError):
                continue
    return out


def driver(conflist: ConfList) -> str:
    return str(conflist.plugins[0].get("type", "?"))


def ipam_dir(conflist: ConfList) -> Path | None:
    """host-local's directory for this network (<dataDir>/<name>), if host-local is its IPAM (overlay's always is:
    its `ipam` holds only keys for the host-local it generates)."""
    for plugin in conflist.plugins:
        ipam = plugin.get("ipam") or {}
        if isinstance(ipam, dict) and (ipam.get("type") == "host-local" or plugin.get("type") == "overlay"):
            return Path(ipam.get("dataDir") or DEFAULT_IPAM_DIR) / conflist.name
    return None


def bridge_name(conflist: ConfList) -> str | None:
    for plugin in conflist.plugins:
        if plugin.get("type") == "bridge":
            return str(plugin.get("bridge") or "cni0")
        if plugin.get("type") == "overlay":
            delegate: dict[str, Any] = plugin["delegate"] if isinstance(plugin.get("delegate"), dict) else {}
            if (delegate.get("type") or "bridge") == "bridge":
                return str(delegate.get("bridge") or "cni0")
    return None


# --- network create ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CreateOptions:
    name: str
    subnets: list[str]
    ip_ranges: list[str]
    gateways: list[str]
    bridge: str | None
    internal: bool
    mtu: int | None
    ipam_dir: str | None
    isolate: bool = False
    driver: str = "bridge"
    subnet_file: str | None = None


def _network(text: str, flag: str) -> netaddr.IPNetwork:
    try:
        net = netaddr.IPNetwork(text)
    except (netaddr.AddrFormatError, ValueError, TypeError):
        raise UserError(f"invalid {flag} {text!r}: expected a CIDR such as 10.1.0.0/24 or fd00:1::/64") from None
    if "/" not in text:
        raise UserError(f"invalid {flag} {text!r}: the prefix length is missing (e.g. {text}/24)")
    return net


def _owner(value: netaddr.IPNetwork | netaddr.IPAddress, nets: list[netaddr.IPNetwork], flag: str,
           text: str) -> int:
    owners = [i for i, net in enumerate(nets) if value in net]
    if not owners:
        raise UserError(f"{flag} {text!r} is in none of the subnets ({', '.join(map(str, nets))})")
    return owners[0]


def default_bridge(name: str) -> str:
    candidate = f"pycni-{name}"
    if len(candidate) <= 15 and _VALID_NAME.match(name):
        return candidate
    return "pycni-" + hashlib.sha256(name.encode()).hexdigest()[:9]


def build(opts: CreateOptions, existing: list[ConfList]) -> dict[str, Any]:
    """The conflist for `network create`, or a UserError naming the flag; nothing is written here."""
    if not _VALID_NAME.match(opts.name):
        raise UserError(f"invalid network name {opts.name!r}: letters, digits, '_', '.', '-' only, starting with a "
                        "letter or digit")
    if any(c.name == opts.name for c in existing):
        same = next(c for c in existing if c.name == opts.name)
        raise UserError(f"a network named {opts.name!r} already exists ({same.path})")
    if opts.driver == "overlay":
        return _overlay(opts, existing)
    if opts.driver != "bridge":
        raise UserError(f"invalid --driver {opts.driver!r}: expected bridge or overlay")
    if opts.subnet_file is not None:
        raise UserError("--subnet-file is for --driver overlay only")
    if not opts.subnets:
        raise UserError("--subnet is required (e.g. --subnet 10.1.0.0/24)")
    nets = [_network(s, "--subnet") for s in opts.subnets]
    for i, net in enumerate(nets):
        if net.ip != net.network:
            raise UserError(f"invalid --subnet {opts.subnets[i]!r}: host bits are set (did you mean {net.cidr}?)")
        if net.size < 4:
            raise UserError(f"--subnet {opts.subnets[i]!r} is too small: it leaves no address for a container")
        for other in nets[:i]:
            if net.first <= other.last and other.first <= net.last:
                raise UserError(f"--subnet {opts.subnets[i]!r} overlaps --subnet {other}")
        for conflist in existing:
            for theirs in subnets(conflist):
                if theirs.version == net.version and net.first <= theirs.last and theirs.first <= net.last:
                    raise UserError(f"--subnet {opts.subnets[i]!r} overlaps {theirs} of network {conflist.name!r} "
                                    f"({conflist.path})")
    entries: list[dict[str, Any]] = [{"subnet": str(net)} for net in nets]
    for text in opts.ip_ranges:
        sub = _network(text, "--ip-range")
        i = _owner(sub, nets, "--ip-range", text)
        if "rangeStart" in entries[i]:
            raise UserError(f"a second --ip-range {text!r} for --subnet {nets[i]}: give one per subnet")
        first, last = max(sub.first, nets[i].first + 1), min(sub.last, nets[i].last - 1)
        if first > last:
            raise UserError(f"--ip-range {text!r} holds no usable address of --subnet {nets[i]}")
        entries[i]["rangeStart"] = str(netaddr.IPAddress(first, sub.version))
        entries[i]["rangeEnd"] = str(netaddr.IPAddress(last, sub.version))
    for text in opts.gateways:
        try:
            gw = netaddr.IPAddress(text)
        except (netaddr.AddrFormatError, ValueError, TypeError):
            raise UserError(f"invalid --gateway {text!r}: expected an IP address") from None
        i = _owner(gw, nets, "--gateway", text)
        if "gateway" in entries[i]:
            raise UserError(f"a second --gateway {text!r} for --subnet {nets[i]}: give one per subnet")
        if gw.value in (nets[i].first, nets[i].last) and nets[i].version == 4:
            raise UserError(f"--gateway {text!r} is the network or broadcast address of --subnet {nets[i]}")
        entries[i]["gateway"] = str(gw)
    bridge = opts.bridge or default_bridge(opts.name)
    _check_bridge(bridge, existing)
    if opts.mtu is not None and not 68 <= opts.mtu <= 65535:
        raise UserError(f"invalid --mtu {opts.mtu}: expected 68 to 65535")
    ipam: dict[str, Any] = {"type": "host-local", "ranges": [[e] for e in entries]}
    if not opts.internal:
        families = sorted({net.version for net in nets})
        ipam["routes"] = [{"dst": "0.0.0.0/0" if v == 4 else "::/0"} for v in families]
    if opts.ipam_dir:
        ipam["dataDir"] = os.path.abspath(opts.ipam_dir)
    bridge_conf: dict[str, Any] = {"type": "bridge", "bridge": bridge, "isGateway": True,
                                   "ipMasq": not opts.internal, "hairpinMode": True,
                                   "capabilities": {"ips": True, "mac": True}}
    if opts.mtu is not None:
        bridge_conf["mtu"] = opts.mtu
    bridge_conf["ipam"] = ipam
    # firewall: opens the forward path on nodes whose FORWARD policy is DROP (podman chains it too); --isolate makes
    # it drop traffic between this network's bridge and any other isolated one (Docker's default between networks).
    firewall: dict[str, Any] = {"type": "firewall"}
    if opts.isolate:
        firewall["ingressPolicy"] = "same-bridge"
    plugins = [bridge_conf, {"type": "portmap", "capabilities": {"portMappings": True}}, firewall]
    return {"cniVersion": CNI_VERSION, "name": opts.name, "plugins": plugins}


def _check_bridge(bridge: str, existing: list[ConfList]) -> None:
    if len(bridge) > 15 or not re.match(r"^[^/:\s]+$", bridge) or bridge in (".", ".."):
        raise UserError(f"invalid --bridge {bridge!r}: an interface name of 1 to 15 characters without '/', ':' or "
                        "whitespace")
    for conflist in existing:
        if bridge_name(conflist) == bridge:
            raise UserError(f"--bridge {bridge!r} is already the bridge of network {conflist.name!r} "
                            f"({conflist.path})")


def _overlay(opts: CreateOptions, existing: list[ConfList]) -> dict[str, Any]:
    """conf-examples/overlay/10-overlay.conflist for this name: the node's subnet, gateway and MTU come from
    pycni-overlayd's subnet.env, masquerading is the agent's (--ip-masq), so the flags for those are refused."""
    refused = [flag for flag, given in (("--subnet", opts.subnets), ("--ip-range", opts.ip_ranges),
                                        ("--gateway", opts.gateways), ("--internal", opts.internal),
                                        ("--mtu", opts.mtu is not None)) if given]
    if refused:
        raise UserError(f"{refused[0]} does not apply to --driver overlay: the node's subnet, gateway and MTU come "
                        "from pycni-overlayd's subnet file (--subnet-file), and masquerading is the agent's "
                        "(pycni-overlayd --ip-masq)")
    bridge = opts.bridge or default_bridge(opts.name)
    _check_bridge(bridge, existing)
    subnet_file = os.path.abspath(opts.subnet_file or "/run/pycni/subnet.env")
    overlay: dict[str, Any] = {"type": "overlay", "subnetFile": subnet_file,
                               "dataDir": f"/var/lib/cni/pycni-overlay/{opts.name}",
                               "delegate": {"bridge": bridge, "hairpinMode": True, "isDefaultGateway": True},
                               "capabilities": {"mac": True},
                               "ipam": {"dataDir": os.path.abspath(opts.ipam_dir or "/run/cni/networks")}}
    firewall: dict[str, Any] = {"type": "firewall"}
    if opts.isolate:
        firewall["ingressPolicy"] = "same-bridge"
    plugins = [overlay, {"type": "portmap", "capabilities": {"portMappings": True}}, firewall]
    return {"cniVersion": CNI_VERSION, "name": opts.name, "plugins": plugins}


def write(conf_dir: Path, name: str, conflist: dict[str, Any]) -> Path:
    """<conf-dir>/<name>.conflist, whole or not at all (temp file + link: an existing file is never replaced)."""
    conf_dir.mkdir(parents=True, exist_ok=True)
    path = conf_dir / f"{name}.conflist"
    tmp = conf_dir / f".{name}.conflist.tmp-{os.getpid()}"
    try:
        tmp.write_text(json.dumps(conflist, indent=2) + "\n")
        os.link(tmp, path)
    except FileExistsError:
        raise UserError(f"{path} already exists") from None
    finally:
        tmp.unlink(missing_ok=True)
    return path
