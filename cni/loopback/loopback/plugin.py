"""loopback's verbs (reference: plugins/main/loopback): ADD sets `lo` up, DEL sets it down, CHECK that it is up.

Only cniVersion, name, type and prevResult are read; CNI_ARGS and runtimeConfig are ignored, and so is
CNI_IFNAME: the plugin always acts on `lo` (common.skel still validates the name, as libcni's skel does).
GC and STATUS (spec 1.1.0) have no handler on purpose: loopback keeps no state, so common.skel answers both with
success and no output (cniVersion >= 1.1.0; older versions get code 1 there).
"""
from __future__ import annotations

from common import netns
from common.errors import CniError, Code
from common.skel import Plugin, Request
from common.types import Result

from . import link
from .addresses import first_non_loopback, lo_result


def add(request: Request) -> Result:
    prev = request.prev_result()   # parsed (code 7 naming the key) before the namespace is touched
    addresses = link.bring_up(request.netns)
    foreign = first_non_loopback(addresses)
    if foreign is not None:
        # 999: the spec has no code for a container whose lo carries a foreign address (its netns state, not
        # the config or the environment). lo stays up, as with the reference.
        raise CniError(Code.INTERNAL, f'loopback interface found with non-loopback address "{foreign.ip}"')
    # With a prevResult the plugin passes it through (re-rendered at the config's version by common.skel).
    return prev if prev is not None else lo_result(addresses, sandbox=request.netns)


def delete(request: Request) -> None:
    """Best effort, as the spec wants: no CNI_NETNS, or a namespace already gone (the path missing, or left
    behind holding no namespace), is success."""
    if not request.netns:
        return
    try:
        link.bring_down(request.netns)
    except (netns.NetnsGone, netns.NotANetns):
        return


def check(request: Request) -> None:
    """lo must be up; prevResult and addresses are not consulted (as the reference). A missing namespace is
    code 3 (NetnsGone), a path that is no namespace code 4."""
    if not link.is_up(request.netns):
        # 999: the spec defines no code for "the container's state differs" (bridge and host-local CHECK alike).
        raise CniError(Code.INTERNAL, "loopback interface is down")


PLUGIN = Plugin(name="loopback", handlers={"ADD": add, "DEL": delete, "CHECK": check})
