"""What is attached to a network, and where each fact comes from:

- "libcni cache": <cache-dir>/results/<network>-<containerID>-<ifname> (pycni, cnitool, containerd, podman);
- "host-local": <dataDir>/<network>/<address> files holding "containerID\\r\\nifname";
- "live": the interface in the attachment's netns (pyroute2), when that netns still exists.
"""
from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import netaddr

from . import networks
from .chain import CACHE_KIND, ConfList


def cache_entries(cache_dir: Path, network: str | None = None) -> list[dict[str, Any]]:
    results = cache_dir / "results"
    try:
        names = sorted(os.listdir(results))
    except FileNotFoundError:
        return []
    entries = []
    for name in names:
        try:
            data = json.loads((results / name).read_bytes())
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict) or data.get("kind") != CACHE_KIND:
            continue
        if network is None or data.get("networkName") == network:
            data["_file"] = str(results / name)
            entries.append(data)
    return entries


def cached_netns(entry: dict[str, Any]) -> str:
    """libcni 1.1 does not cache the netns path (1.2 does, as "netns"): the cached result's container interface
    has it ("sandbox")."""
    if isinstance(entry.get("netns"), str) and entry["netns"]:
        return str(entry["netns"])
    result = entry.get("result") or {}
    for iface in result.get("interfaces") or []:
        if isinstance(iface, dict) and iface.get("sandbox"):
            return str(iface["sandbox"])
    return ""


def host_local_files(conflist: ConfList) -> dict[tuple[str, str], list[str]]:
    """(containerID, ifname) -> the addresses host-local holds for them."""
    directory = networks.ipam_dir(conflist)
    held: dict[tuple[str, str], list[str]] = {}
    if directory is None:
        return held
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return held
    for name in names:
        try:
            netaddr.IPAddress(name)
        except (netaddr.AddrFormatError, ValueError):
            continue
        try:
            text = (directory / name).read_bytes().decode("utf-8", "replace")
        except OSError:
            continue
        cid, _, ifname = text.partition("\r\n")
        held.setdefault((cid.strip(), ifname.strip()), []).append(name)
    return held


def live_interface(netns: str, ifname: str) -> dict[str, Any] | None:
    """The interface as the kernel has it now, or None (netns gone, no such interface). Never creates a netns."""
    if not netns or not os.path.exists(netns):
        return None
    from pyroute2 import IPRoute
    try:
        with IPRoute(netns=netns, flags=0) as ipr:
            links = ipr.link_lookup(ifname=ifname)
            if not links:
                return None
            link = ipr.get_links(links[0])[0]
            addrs = [f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}" for a in ipr.get_addr(index=links[0])
                     if a.get_attr("IFA_ADDRESS")]
            return {"mac": link.get_attr("IFLA_ADDRESS"), "mtu": link.get_attr("IFLA_MTU"),
                    "state": link.get_attr("IFLA_OPERSTATE"), "addresses": addrs}
    except OSError:
        return None


def attachments(conflist: ConfList, cache_dir: Path, *, live: bool = True) -> list[dict[str, Any]]:
    """Every attachment of the network: the cache's, then host-local holders the cache does not know."""
    held = host_local_files(conflist)
    out = []
    for entry in cache_entries(cache_dir, conflist.name):
        cid, ifname = str(entry.get("containerId", "")), str(entry.get("ifName", ""))
        result = entry.get("result") or {}
        ifaces = result.get("interfaces") or []
        container_if = next((i for i in ifaces if isinstance(i, dict) and i.get("sandbox")), {})
        netns = cached_netns(entry)
        item: dict[str, Any] = {
            "containerId": cid, "ifname": ifname, "netns": netns,
            "addresses": [ip.get("address") for ip in result.get("ips") or [] if isinstance(ip, dict)],
            "mac": container_if.get("mac", ""),
            "portMappings": (entry.get("capabilityArgs") or {}).get("portMappings", []),
            "sources": ["libcni cache"],
            "cacheFile": entry["_file"],
        }
        addresses = held.pop((cid, ifname), None)
        if addresses is not None:
            item["sources"].append("host-local")
            item["hostLocal"] = addresses
        if live:
            item["live"] = live_interface(netns, ifname)
            if item["live"] is not None:
                item["sources"].append("live")
        out.append(item)
    for (cid, ifname), addresses in sorted(held.items()):
        out.append({"containerId": cid, "ifname": ifname, "netns": "", "addresses": addresses, "mac": "",
                    "portMappings": [], "sources": ["host-local"], "hostLocal": addresses, "live": None})
    return out


def decoded_config(entry: dict[str, Any]) -> bytes | None:
    try:
        return base64.b64decode(entry.get("config") or "")
    except ValueError:
        return None
