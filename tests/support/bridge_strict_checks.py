"""Every check that bridge's ADD makes strictly, as data: one table, run in two places.

- tests/unit/bridge/test_teardown_conf.py: the strict ADD read (bridge.config.parse) refuses each case,
  the lenient DEL/GC read (bridge.config.parse_teardown) accepts it, and no `raise` or strict getter of the ADD
  read is missing from the table;
- tests/e2e/test_bridge_swap.py: Debian's Go bridge 1.1.1 ADDs each case (or refuses it, `go_add`), then our
  built bridge DELs it, and nothing is left.

`keys` are merged into a bridge config that has ipMasq, macspoofchk and a host-local IPAM, so a Go ADD leaves a
veth, an allocation and rules behind for our DEL to remove.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SUBNET = "10.96.0.0/24"


@dataclass(frozen=True)
class StrictCheck:
    id: str
    keys: dict[str, Any] = field(default_factory=dict)
    cni_args: str = ""
    code: int = 7                 # what our ADD answers
    go_add: bool | None = False   # Debian's Go bridge 1.1.1 ADDs it (None: the kernel decides)
    strict_in: str = "bridge"       # which plugin's ADD read refuses it


CHECKS = [
    # keys the Go plugin 1.1.1 does not know (it ignores them, so it ADDs the pod)
    StrictCheck("ipMasqBackend-unknown", {"ipMasqBackend": "foo"}, go_add=True),
    StrictCheck("ipMasqBackend-not-a-string", {"ipMasqBackend": 1}, go_add=True),
    StrictCheck("vlanTrunk-not-a-list", {"vlanTrunk": "10"}, go_add=True),
    StrictCheck("vlanTrunk-item-not-an-object", {"vlanTrunk": [10]}, go_add=True),
    StrictCheck("vlanTrunk-minID-without-maxID", {"vlanTrunk": [{"minID": 5}]}, go_add=True),
    StrictCheck("vlanTrunk-maxID-without-minID", {"vlanTrunk": [{"maxID": 5}]}, go_add=True),
    StrictCheck("vlanTrunk-minID-above-maxID", {"vlanTrunk": [{"minID": 9, "maxID": 5}]}, go_add=True),
    StrictCheck("vlanTrunk-minID-out-of-range", {"vlanTrunk": [{"minID": 0, "maxID": 5}]}, go_add=True),
    StrictCheck("vlanTrunk-maxID-out-of-range", {"vlanTrunk": [{"minID": 1, "maxID": 4095}]}, go_add=True),
    StrictCheck("vlanTrunk-id-out-of-range", {"vlanTrunk": [{"id": 5000}]}, go_add=True),
    StrictCheck("vlan-and-vlanTrunk", {"vlan": 10, "vlanTrunk": [{"id": 20}]}, go_add=None),
    StrictCheck("disableContainerInterface-with-ipam", {"disableContainerInterface": True}, go_add=True),
    StrictCheck("disableContainerInterface-not-a-boolean", {"disableContainerInterface": "yes"}, go_add=True),
    StrictCheck("preserveDefaultVlan-not-a-boolean", {"preserveDefaultVlan": 1}, go_add=True),
    StrictCheck("portIsolation-not-a-boolean", {"portIsolation": "true"}, go_add=True),
    # keys it knows, with values it accepts
    StrictCheck("mtu-negative", {"mtu": -1}, go_add=True),
    StrictCheck("mtu-too-large", {"mtu": 65536}, go_add=None),
    # values it refuses as well (a DEL still follows a failed ADD)
    StrictCheck("mtu-not-an-integer", {"mtu": 1400.5}),
    StrictCheck("mtu-not-a-number", {"mtu": "1400"}),
    StrictCheck("vlan-out-of-range", {"vlan": 4095}),
    StrictCheck("vlan-negative", {"vlan": -1}),
    StrictCheck("hairpinMode-and-promiscMode", {"hairpinMode": True, "promiscMode": True}),
    StrictCheck("bridge-name-too-long", {"bridge": "b12-name-too-long"}),
    StrictCheck("bridge-name-with-colon", {"bridge": "b12:0"}),
    StrictCheck("bridge-not-a-string", {"bridge": 12}),
    StrictCheck("mac-invalid-runtimeConfig", {"runtimeConfig": {"mac": "zz:zz"}}),
    StrictCheck("mac-invalid-args", {"args": {"cni": {"mac": "0a:58"}}}),
    StrictCheck("mac-invalid-CNI_ARGS", cni_args="IgnoreUnknown=1;MAC=nope"),
    StrictCheck("CNI_ARGS-unknown-key", cni_args="FOO=bar", code=4),
    StrictCheck("CNI_ARGS-malformed", cni_args="FOO", code=4),
    StrictCheck("dns-malformed", {"dns": {"nameservers": "10.0.0.53"}}),
    StrictCheck("dns-not-an-object", {"dns": ["10.0.0.53"]}),
    StrictCheck("ipam-not-an-object", {"ipam": "host-local"}),
    StrictCheck("ipam-type-not-a-string", {"ipam": {"type": 1}}),
    *[StrictCheck(f"{key}-not-a-boolean", {key: "true"}) for key in (
        "isGateway", "isDefaultGateway", "forceAddress", "ipMasq", "hairpinMode", "promiscMode", "macspoofchk",
        "enabledad")],
    # host-local's check, on the config bridge hands over verbatim
    # (without isGateway: the Go bridge cannot put such a gateway on the bridge)
    StrictCheck("ipam-gateway-outside-subnet",
                {"isGateway": False, "ipam": {"ranges": [[{"subnet": SUBNET, "gateway": "10.97.0.1"}]]}},
                go_add=True, strict_in="host-local"),
    # Go refuses it too (999 "IPNet IP and Mask version mismatch"); ours names the key, code 7
    StrictCheck("ipam-ipv4-mapped-subnet", {"ipam": {"ranges": [[{"subnet": "::ffff:10.96.0.0/120"}]]}},
                strict_in="host-local"),
]
BY_ID = {check.id: check for check in CHECKS}


def config(check: StrictCheck, *, data_dir: str, network: str = "b12strict", bridge: str = "b12st0",
           version: str = "1.0.0") -> dict[str, Any]:
    """The base config with the check's keys merged in (objects key by key, anything else replaced)."""
    base = {"cniVersion": version, "name": network, "type": "bridge", "bridge": bridge, "isGateway": True,
            "ipMasq": True, "macspoofchk": True,
            "ipam": {"type": "host-local", "dataDir": data_dir, "ranges": [[{"subnet": SUBNET}]]}}
    return _merged(base, check.keys)


def _merged(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        both = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = _merged(out[key], value) if both else value
    return out
