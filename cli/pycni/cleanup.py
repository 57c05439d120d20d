"""What `gc` removes and `doctor` reports: attachments that are no longer valid, and the node state (host-local
allocations, host veths, per-pod iptables rules) that no valid attachment holds.

An attachment (network, containerID, ifname) is valid when its libcni cache entry's netns still exists (an entry
whose netns is unknown counts as valid) and, with `--valid`, when it is listed there; attachments of a `pycni run`
are always valid (its own teardown, or `pycni gc` once it is dead, removes them). `gc` DELs the cache entries that
are not valid (libcni's GCNetworkList does the same with the runtime's list), then sends each network's chain GC
with the valid ones, then deletes host veths on the network's bridge that no cache entry names. The cache dir must
be the one the node's runtimes use (`--cache-dir`): what it does not know is taken for a leak.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import netaddr

from . import facts, networks
from .chain import ConfList
from .errors import UserError

_VALID_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$")
_OWNER = re.compile(r'^(?:dnat )?name: "(?P<net>[^"]*)" id: "(?P<cid>[^"]*)"$')
_HOST_RULE = re.compile(r"^-A CNI-FORWARD (?:-d|-s) (?P<ip>[0-9a-fA-F.:]+)/(?:32|128) ")
_ISOLATION = re.compile(r"^-A (?P<chain>CNI-ISOLATION-STAGE-[12]) (?:.*? )?(?:-i|-o) (?P<bridge>\S+) ")


def parse_valid(specs: list[str]) -> list[tuple[str, str | None]]:
    """--valid CONTAINERID[/IFNAME] -> (containerID, ifname or None for every interface)."""
    out: list[tuple[str, str | None]] = []
    for spec in specs:
        cid, _, ifname = spec.partition("/")
        if not _VALID_NAME.match(cid) or (ifname == "" and spec.endswith("/")) or "/" in ifname:
            raise UserError(f"invalid --valid {spec!r}: expected CONTAINERID or CONTAINERID/IFNAME")
        out.append((cid, ifname or None))
    return out


@dataclass
class Plan:
    """The cache entries gc DELs (with why), and per network the attachments its GC keeps."""
    stale: list[tuple[dict[str, Any], str]] = field(default_factory=list)
    valid: dict[str, list[dict[str, str]]] = field(default_factory=dict)


def plan(cache_dir: Path, owned: set[str], network: str | None,
         valid_specs: list[tuple[str, str | None]] | None) -> Plan:
    out = Plan()
    for entry in facts.cache_entries(cache_dir, network):
        cid, ifname, net = str(entry.get("containerId", "")), str(entry.get("ifName", "")), entry["networkName"]
        netns = facts.cached_netns(entry)
        reason = ""
        if cid not in owned:
            if netns and not os.path.exists(netns):
                reason = f"its netns {netns} is gone"
            elif valid_specs is not None and not any(c == cid and i in (None, ifname) for c, i in valid_specs):
                reason = "it is not in --valid"
        if reason:
            out.stale.append((entry, reason))
        else:
            out.valid.setdefault(net, []).append({"containerID": cid, "ifname": ifname})
    return out


# --- node state no attachment holds -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Leak:
    network: str | None     # the network whose `pycni gc NETWORK` removes it (None: none does)
    text: str               # a sentence: what and why
    fix: str                # the command that fixes it


def _host_ifaces(entries: list[dict[str, Any]]) -> tuple[set[str], bool]:
    """Host-side interface names in cached results, and whether every entry had interfaces to tell."""
    names: set[str] = set()
    complete = True
    for entry in entries:
        ifaces = (entry.get("result") or {}).get("interfaces")
        if not isinstance(ifaces, list) or not ifaces:
            complete = False
            continue
        names.update(str(i.get("name")) for i in ifaces if isinstance(i, dict) and not i.get("sandbox"))
    return names, complete


def _addresses(entries: list[dict[str, Any]]) -> set[netaddr.IPAddress]:
    out = set()
    for entry in entries:
        for ip in (entry.get("result") or {}).get("ips") or []:
            try:
                out.add(netaddr.IPNetwork(ip.get("address")).ip)
            except (netaddr.AddrFormatError, ValueError, TypeError, AttributeError):
                continue
    return out


def veths() -> list[dict[str, Any]]:
    """Every veth of this namespace: name, index and the name of its master (bridge)."""
    from pyroute2 import IPRoute
    with IPRoute() as ipr:
        links = ipr.get_links()
        names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in links}
        out = []
        for link in links:
            info = link.get_attr("IFLA_LINKINFO")
            if info is None or info.get_attr("IFLA_INFO_KIND") != "veth":
                continue
            master = link.get_attr("IFLA_MASTER")
            out.append({"name": link.get_attr("IFLA_IFNAME"), "index": link["index"],
                        "master": names.get(master) if master else None})
        return out


def orphan_veths(conflists: list[ConfList], entries: list[dict[str, Any]]) -> list[tuple[ConfList, str]]:
    """(network, veth) for veths on a network's bridge that no cache entry names; none for a network whose
    entries cannot tell (a result without interfaces)."""
    bridges = {networks.bridge_name(c): c for c in conflists if networks.bridge_name(c)}
    if not bridges:
        return []
    known, _ = _host_ifaces(entries)
    out = []
    for veth in veths():
        conflist = bridges.get(veth["master"])
        if conflist is None or veth["name"] in known:
            continue
        if _host_ifaces([e for e in entries if e.get("networkName") == conflist.name])[1]:
            out.append((conflist, str(veth["name"])))
    return out


def _link_names() -> list[str]:
    from pyroute2 import IPRoute
    with IPRoute() as ipr:
        return [str(link.get_attr("IFLA_IFNAME")) for link in ipr.get_links()]


def _save(program: str, table: str) -> str:
    if shutil.which(program) is None:
        return ""
    done = subprocess.run([program, "-t", table], capture_output=True, text=True, check=False)
    return done.stdout if done.returncode == 0 else ""


def _nft_rules() -> list[dict[str, Any]]:
    """Every rule of the tables our plugins write with nft (masquerade, portmap, firewall); [] without nft."""
    if shutil.which("nft") is None:
        return []
    done = subprocess.run(["nft", "-j", "list", "ruleset"], capture_output=True, text=True, check=False)
    try:
        objects = json.loads(done.stdout).get("nftables", []) if done.returncode == 0 else []
    except (ValueError, AttributeError):
        return []
    tables = ("cni_plugins_masquerade", "cni_hostport", "cni_plugins_firewall")
    return [o["rule"] for o in objects if isinstance(o, dict) and isinstance(o.get("rule"), dict)
            and o["rule"].get("table") in tables]


def _nft_leaks(conflists: list[ConfList], entries: list[dict[str, Any]]) -> list[Leak]:
    by_name = {c.name: c for c in conflists}
    by_tag = {"network-" + hashlib.sha512(c.name.encode()).hexdigest()[:16]: c.name for c in conflists}
    attached = {(str(e.get("networkName")), str(e.get("containerId"))) for e in entries}
    holders = {(str(e.get("networkName")), str(e.get("containerId")), str(e.get("ifName"))) for e in entries}
    found: dict[tuple[str, str, str], Leak] = {}
    for rule in _nft_rules():
        comment, table = str(rule.get("comment", "")), rule["table"]
        where = f"nftables table {rule.get('family')} {table}"
        if table == "cni_plugins_masquerade":
            match = re.search(r", net: (?P<net>[^,]*), if: (?P<ifname>[^,]*), id: (?P<cid>.*)$", comment)
            if match and match["net"] in by_name and (match["net"], match["cid"], match["ifname"]) not in holders:
                found.setdefault((table, match["net"], match["cid"]), Leak(
                    match["net"], f"network {match['net']!r}: masquerade rules ({where}) of container "
                    f"{match['cid']}/{match['ifname']}, which no attachment holds", f"pycni gc {match['net']}"))
        elif table == "cni_hostport" and rule.get("chain") == "hostports":
            text = json.dumps(rule.get("expr"))
            tag = next((t for t in by_tag if f'"{t}"' in text), None)
            if tag is not None and (by_tag[tag], comment) not in attached:
                found.setdefault((table, by_tag[tag], comment), Leak(
                    by_tag[tag], f"network {by_tag[tag]!r}: portmap rules ({where}) of container {comment}, which "
                    "no attachment holds", f"pycni gc {by_tag[tag]}"))
        elif table == "cni_plugins_firewall" and rule.get("chain") == "cni-forward":
            parts = comment.split(" ")
            if len(parts) == 3 and parts[0] in by_name and tuple(parts) not in holders:
                found.setdefault((table, parts[0], parts[1]), Leak(
                    parts[0], f"network {parts[0]!r}: firewall accept rules ({where}) of {parts[1]}/{parts[2]}, "
                    "which no attachment holds", f"pycni gc {parts[0]}"))
    return list(found.values())


def _tokens(line: str) -> list[str]:
    try:
        return shlex.split(line)
    except ValueError:
        return line.split()


def _comment(tokens: list[str]) -> str | None:
    return tokens[tokens.index("--comment") + 1] if "--comment" in tokens[:-1] else None


def leaks(conflists: list[ConfList], cache_dir: Path) -> list[Leak]:
    """Everything on the node that no libcni cache entry accounts for (reads only)."""
    entries = facts.cache_entries(cache_dir)
    by_name = {c.name: c for c in conflists}
    attached = {(str(e.get("networkName")), str(e.get("containerId"))) for e in entries}
    holders = {(str(e.get("networkName")), str(e.get("containerId")), str(e.get("ifName"))) for e in entries}
    found: list[Leak] = []
    for conflist in conflists:
        for (cid, ifname), addresses in sorted(facts.host_local_files(conflist).items()):
            if (conflist.name, cid, ifname) not in holders:
                found.append(Leak(conflist.name, f"network {conflist.name!r}: host-local holds "
                                  f"{', '.join(addresses)} for {cid}/{ifname}, which no libcni cache entry knows "
                                  f"({networks.ipam_dir(conflist)})", f"pycni gc {conflist.name}"))
    for conflist, veth in orphan_veths(conflists, entries):
        found.append(Leak(conflist.name, f"network {conflist.name!r}: host veth {veth} on bridge "
                          f"{networks.bridge_name(conflist)} belongs to no attachment (no cached result names it)",
                          f"pycni gc {conflist.name}"))
    found += _nft_leaks(conflists, entries)
    held = _addresses(entries)
    for program in ("iptables-save", "ip6tables-save"):
        nat = _save(program, "nat")
        seen: set[tuple[str, str, str]] = set()
        for line in nat.splitlines():
            if not line.startswith("-A "):
                continue
            tokens = _tokens(line)
            owner = _OWNER.match(_comment(tokens) or "")
            if owner is None or owner["net"] not in by_name or (owner["net"], owner["cid"]) in attached:
                continue
            if tokens[1] == "CNI-HOSTPORT-DNAT":
                kind = f"portmap rules ({tokens[-1]})"
            elif tokens[1].startswith("CNI-") and not tokens[1].startswith("CNI-DN-"):
                kind = f"masquerade chain {tokens[1]}"
            else:
                continue
            if (kind, owner["net"], owner["cid"]) in seen:
                continue
            seen.add((kind, owner["net"], owner["cid"]))
            found.append(Leak(owner["net"], f"network {owner['net']!r}: {program.split('-')[0]} {kind} of container "
                              f"{owner['cid']}, which no attachment holds", f"pycni gc {owner['net']}"))
        reported: set[str] = set()
        firewalled = next((c.name for c in conflists if any(p.get("type") == "firewall" for p in c.plugins)), None)
        filter_table = _save(program, "filter")
        links = set(_link_names()) if "-A CNI-ISOLATION-STAGE-" in filter_table else set()
        for line in filter_table.splitlines():
            isolation = _ISOLATION.match(line)
            if isolation is not None and isolation["bridge"] not in links and isolation["bridge"] not in reported:
                reported.add(isolation["bridge"])
                found.append(Leak(firewalled, f"{program.split('-')[0]} isolation rules in {isolation['chain']} "
                                  f"name bridge {isolation['bridge']}, which no longer exists",
                                  f"pycni gc {firewalled}" if firewalled else
                                  f"{program.split('-')[0]}-save -t filter | grep -- {isolation['bridge']}, then "
                                  f"{program.split('-')[0]} -D each of those rules"))
                continue
            match = _HOST_RULE.match(line)
            if match is None:
                continue
            try:
                ip = netaddr.IPAddress(match["ip"])
            except (netaddr.AddrFormatError, ValueError):
                continue
            if ip in held or str(ip) in reported:
                continue
            reported.add(str(ip))
            owner_net = next((c for c in conflists if any(ip in net for net in networks.subnets(c))), None)
            if owner_net is not None:
                found.append(Leak(owner_net.name, f"network {owner_net.name!r}: firewall accept rules for {ip} in "
                                  f"CNI-FORWARD ({program.split('-')[0]}), an address no attachment holds",
                                  f"pycni gc {owner_net.name}"))
            else:
                cmd = "iptables" if ip.version == 4 else "ip6tables"
                found.append(Leak(None, f"firewall accept rules for {ip} in CNI-FORWARD ({cmd}): no attachment "
                                  "holds the address and no network in --conf-dir has it in a subnet",
                                  f"{cmd}-save -t filter | grep -n ' {ip}/', then {cmd} -D CNI-FORWARD each"))
    return found


def delete_veths(names: list[str]) -> list[str]:
    """Delete host veths (the peer goes with them); one error line per failure."""
    from pyroute2 import IPRoute
    errors = []
    with IPRoute() as ipr:
        for name in names:
            index = ipr.link_lookup(ifname=name)
            if not index:
                continue
            try:
                ipr.link("del", index=index[0])
            except OSError as e:
                errors.append(f"delete veth {name}: {e}")
    return errors
