"""subnet.env, the file pycni-overlayd (or flanneld) writes for the node: flannel's variables, one per line.

    FLANNEL_NETWORK=10.244.0.0/16      the whole cluster network
    FLANNEL_SUBNET=10.244.1.1/24       this node's subnet (flannel writes the gateway address with the length)
    FLANNEL_MTU=1450                   the pod MTU (underlay minus the VXLAN overhead)
    FLANNEL_IPMASQ=true                the agent masquerades traffic leaving the cluster network
    FLANNEL_IPV6_NETWORK / FLANNEL_IPV6_SUBNET   the same for IPv6 (optional)
"""
from __future__ import annotations

from common.errors import CniError, Code, TryAgainError
from common.ip import ip_interface
from common.record import record

TYPE_CHECKING = False  # the typing module costs ~4 ms per plugin start; annotations are strings
if TYPE_CHECKING:
    from common.ip import IPNetwork as Network

DEFAULT_PATH = "/run/pycni/subnet.env"


@record(frozen=True)
class SubnetEnv:
    network: Network | None
    subnet: Network | None
    mtu: int
    ipmasq: bool
    ipv6_network: Network | None = None
    ipv6_subnet: Network | None = None

    def ranges(self) -> list[tuple[Network, Network | None]]:
        """(node subnet, cluster network) per family present."""
        pairs = [(self.subnet, self.network), (self.ipv6_subnet, self.ipv6_network)]
        return [(subnet, network) for subnet, network in pairs if subnet is not None]


def read(path: str) -> SubnetEnv:
    """Code 11 while the file is missing: the agent has not finished its first reconcile yet."""
    try:
        with open(path, "rb") as f:
            text = f.read(65536).decode("utf-8", "replace")
    except FileNotFoundError:
        raise TryAgainError(f"subnet file {path} not found: is pycni-overlayd running and ready?") from None
    except OSError as exc:
        raise CniError(Code.IO_FAILURE, f"cannot read subnet file {path}: {exc.strerror}") from None
    return parse(text, path)


def parse(text: str, path: str = "subnet.env") -> SubnetEnv:
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and not key.startswith("#"):
            values[key.strip()] = value.strip()
    subnet = _network(values, "FLANNEL_SUBNET", path)
    ipv6_subnet = _network(values, "FLANNEL_IPV6_SUBNET", path)
    if subnet is None and ipv6_subnet is None:
        raise CniError(Code.INVALID_CONFIG, f"{path} has neither FLANNEL_SUBNET nor FLANNEL_IPV6_SUBNET")
    mtu = values.get("FLANNEL_MTU")
    if mtu is None or not mtu.isdigit() or not 68 <= int(mtu) <= 65535:
        raise CniError(Code.INVALID_CONFIG, f"{path}: FLANNEL_MTU must be an integer 68..65535, got {mtu!r}")
    ipmasq = values.get("FLANNEL_IPMASQ", "false")
    if ipmasq not in ("true", "false"):
        raise CniError(Code.INVALID_CONFIG, f"{path}: FLANNEL_IPMASQ must be true or false, got {ipmasq!r}")
    return SubnetEnv(network=_network(values, "FLANNEL_NETWORK", path), subnet=subnet, mtu=int(mtu),
                     ipmasq=ipmasq == "true", ipv6_network=_network(values, "FLANNEL_IPV6_NETWORK", path),
                     ipv6_subnet=ipv6_subnet)


def _network(values: dict[str, str], key: str, path: str) -> Network | None:
    text = values.get(key)
    if not text:
        return None
    try:
        return ip_interface(text).network   # 10.244.1.1/24 -> 10.244.1.0/24
    except ValueError:
        raise CniError(Code.INVALID_CONFIG, f"{path}: {key} is not a CIDR: {text!r}") from None
