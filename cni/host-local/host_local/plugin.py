"""The host-local plugin's verbs (work in progress: the protocol core is real, the verbs arrive with their issue)."""
from common.errors import CniError, Code
from common.skel import Plugin, Request


def _pending(request: Request) -> None:
    raise CniError(Code.INTERNAL, f"host-local {request.command} is not implemented yet")


PLUGIN = Plugin(name="host-local", handlers={"ADD": _pending, "DEL": _pending, "CHECK": _pending})
