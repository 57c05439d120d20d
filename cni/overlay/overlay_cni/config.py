"""The overlay plugin's config and the delegate config it builds from subnet.env (pure; flannel's rules).

    {"type": "overlay", "subnetFile": "/run/pycni/subnet.env", "dataDir": "/var/lib/cni/pycni-overlay",
     "delegate": {"hairpinMode": true, "isDefaultGateway": true}, "ipam": {"dataDir": "/run/cni/networks"}}

The delegate is bridge with `isGateway`, the MTU from subnet.env, and host-local over the node's subnet with a
route to the whole cluster network (so replies from remote pods leave by the pod's eth0, rp_filter-proof).
Unlike flannel, bridge never masquerades by default (`ipMasq` false): flannel's bridge masquerades everything
leaving the node subnet when flanneld does not, which NATs pod-to-pod traffic across nodes. Masquerading traffic
that leaves the cluster network is the agent's job (`pycni-overlayd --ip-masq`, FLANNEL_IPMASQ=true).
"""
from __future__ import annotations

from common.config import Node
from common.record import record

from . import subnet_env

TYPE_CHECKING = False  # the typing module costs ~4 ms per plugin start; annotations are strings
if TYPE_CHECKING:
    from typing import Any

    from common.config import NetConf

DEFAULT_DATA_DIR = "/var/lib/cni/pycni-overlay"


@record(frozen=True)
class OverlayConf:
    subnet_file: str
    data_dir: str
    delegate: dict[str, Any]     # keys that override the generated bridge config
    ipam: dict[str, Any]         # keys merged into the generated host-local config


def parse(conf: NetConf) -> OverlayConf:
    node = conf.node
    delegate, ipam = node.obj("delegate"), node.obj("ipam")
    return OverlayConf(subnet_file=node.string("subnetFile", "") or subnet_env.DEFAULT_PATH,
                       data_dir=node.string("dataDir", "") or DEFAULT_DATA_DIR,
                       delegate=dict(delegate.data) if delegate else {}, ipam=dict(ipam.data) if ipam else {})


def delegate_config(conf: NetConf, overlay: OverlayConf, env: subnet_env.SubnetEnv) -> dict[str, Any]:
    """The complete stdin of the delegate plugin (what is saved in dataDir and replayed on DEL)."""
    out: dict[str, Any] = {"cniVersion": conf.cni_version, "name": conf.name, "type": "bridge"}
    delegate = Node(overlay.delegate, "delegate")
    plugin_type = delegate.string("type", "") or "bridge"
    generated: dict[str, Any] = {"mtu": env.mtu, "ipMasq": False}
    if plugin_type == "bridge":
        generated["isGateway"] = True
    for key, value in generated.items():
        if not delegate.has(key):
            out[key] = value
    out.update(overlay.delegate)
    out["cniVersion"], out["name"], out["type"] = conf.cni_version, conf.name, plugin_type
    out["ipam"] = ipam_config(overlay.ipam, env)
    for key in ("runtimeConfig", "args", "prevResult", "cni.dev/valid-attachments", "cni.dev/attachments"):
        value = conf.node.get(key)
        if value is not None:
            out[key] = value
    return out


def ipam_config(top_level: dict[str, Any], env: subnet_env.SubnetEnv) -> dict[str, Any]:
    """host-local over the node's subnet(s); the top-level `ipam` adds keys and routes, ranges are the file's."""
    ipam: dict[str, Any] = {"type": "host-local", **top_level}
    node = Node(ipam, "ipam")
    routes = [dict(route.data) for route in node.objects("routes")]
    for _, network in env.ranges():
        if network is not None and not any(route.get("dst") == str(network) for route in routes):
            routes.append({"dst": str(network)})
    for key in ("ranges", "routes"):
        ipam.pop(node.key_of(key), None)
    ipam["ranges"] = [[{"subnet": str(subnet)}] for subnet, _ in env.ranges()]
    ipam["routes"] = routes
    return ipam
