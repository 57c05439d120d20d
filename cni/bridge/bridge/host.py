"""The bridge plugin's effects, in one object the verbs are given: netlink handles on the node and the pod
namespaces, the programs the firewall rules run through, and how the IPAM delegate is run.

Production uses `Host()`; tests pass fakes for any of them, so they drive the same verbs production runs.
Every default imports what it needs when first called: VERSION and the protocol errors load none of it.
"""
from __future__ import annotations

TYPE_CHECKING = False  # the typing module costs ~4 ms per plugin start; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from common.ipam import Invoke
    from common.netlink import Handle

from common import exec as execs
from common.record import field, record

# The bundled plugins bridge runs in-process as its IPAM (plugins.toml's `in_process` lists their modules for the
# build; tests/unit/test_plugin_list.py checks the two agree).
IN_PROCESS = {"host-local": "host_local.plugin"}


def _open_node() -> Handle:
    from common import netlink
    return netlink.open_host()


def _open_pod(path: str) -> Handle:
    from common import netlink
    return netlink.open_in(path)


def _invoke(binary: str, env: Mapping[str, str], stdin: bytes) -> execs.Completed:
    from common import ipam
    return ipam.invoker(IN_PROCESS)(binary, env, stdin)


@record(frozen=True)
class Host:
    open_node: Callable[[], Handle] = field(default=_open_node)         # the namespace the plugin runs in
    open_pod: Callable[[str], Handle] = field(default=_open_pod)        # CNI_NETNS; NetnsGone when missing
    programs: execs.Programs = execs.SYSTEM                             # iptables, nft
    invoke: Invoke = field(default=_invoke)                             # the IPAM plugin
