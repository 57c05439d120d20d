"""Network configurations as the tests send them. Each builder writes the keys it is given and nothing else, so a
test states what its config holds; keyword arguments are config keys (and replace a builder's own, `ipam` too)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

# The builders' defaults.
NETWORK = "relnet"
SUBNET = "10.77.0.0/24"
BRIDGE = "relbr0"
VALID = "cni.dev/valid-attachments"


def ipam(data_dir: Path | str, subnet: str = SUBNET, **keys: Any) -> dict[str, Any]:
    """host-local over `dataDir`, one range of `subnet` (`ranges=` for others)."""
    return {"type": "host-local", "dataDir": str(data_dir), "ranges": [[{"subnet": subnet}]], **keys}


def bridge_conf(data_dir: Path | str | None, *, name: str = NETWORK, version: str = "1.0.0", bridge: str = BRIDGE,
                subnet: str = SUBNET, ranges: list[Any] | None = None, **keys: Any) -> dict[str, Any]:
    """bridge with host-local IPAM over `data_dir` (none when None: a layer-2 network)."""
    conf: dict[str, Any] = {"cniVersion": version, "name": name, "type": "bridge", "bridge": bridge}
    if data_dir is not None:
        conf["ipam"] = ipam(data_dir, subnet, **({"ranges": ranges} if ranges is not None else {}))
    conf.update(keys)
    return conf


def host_local_conf(data_dir: Path | str, *, name: str = NETWORK, subnet: str = SUBNET, version: str = "1.0.0",
                    type: str = "host-local", **ipam_keys: Any) -> dict[str, Any]:
    """A config host-local is called with (as its own, or as a main plugin's `type` delegating to it); the
    keyword arguments are keys of `ipam`."""
    return {"cniVersion": version, "name": name, "type": type, "ipam": ipam(data_dir, subnet, **ipam_keys)}


def prev_result(*addresses: str, version: str = "1.0.0", sandbox: str = "/run/netns/x") -> dict[str, Any]:
    """What the main plugin hands a chained one: `eth0` in `sandbox` holding `addresses`."""
    return {"cniVersion": version, "interfaces": [{"name": "eth0", "sandbox": sandbox}],
            "ips": [{"address": address, "interface": 0} for address in addresses]}


def portmap_conf(mappings: list[dict[str, Any]], *, name: str = NETWORK, ip: str = "10.77.0.5/24",
                 version: str = "1.0.0", sandbox: str = "/run/netns/x", **keys: Any) -> dict[str, Any]:
    """portmap chained after a plugin that gave the container `ip`, with `mappings` as runtimeConfig."""
    conf: dict[str, Any] = {"cniVersion": version, "name": name, "type": "portmap",
                            "runtimeConfig": {"portMappings": mappings},
                            "prevResult": prev_result(ip, version=version, sandbox=sandbox)}
    conf.update(keys)
    return conf


def loopback_conf(version: str | None = "1.0.0", **keys: Any) -> dict[str, Any]:
    """loopback's config (no cniVersion when `version` is None: it reads as 0.1.0)."""
    conf: dict[str, Any] = {"name": "lonet", "type": "loopback", **keys}
    if version is not None:
        conf["cniVersion"] = version
    return conf


def gc_conf(conf: dict[str, Any], *valid: str | tuple[str, str], key: str = VALID,
            version: str | None = "1.1.0") -> dict[str, Any]:
    """`conf` for GC: the attachments `valid` (container IDs on eth0, or (ID, ifname)) under `key`, at `version`
    (None keeps the config's)."""
    attachments = [{"containerID": cid, "ifname": "eth0"} if isinstance(cid, str)
                   else {"containerID": cid[0], "ifname": cid[1]} for cid in valid]
    out = {**conf, key: attachments}
    if version is not None:
        out["cniVersion"] = version
    return out
