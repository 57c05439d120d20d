"""Running the delegate plugin (bridge by default) for a verb, as libcni's invoke.DelegateAdd/Del do.

Our own bundled bridge runs in-process (its protocol handling, exactly as its own process would run it): that
saves a whole interpreter start per ADD and DEL. Any other plugin of that name on CNI_PATH (the Go bridge,
another build of ours) is exec'd with the delegate config on stdin.
"""
from __future__ import annotations

from common import jsonio
from common.ipam import delegate_error, find_plugin, invoker

TYPE_CHECKING = False  # the typing module costs ~4 ms per plugin start; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

    from common import exec as execs
    # (binary path, env, stdin) -> Completed: the one seam tests replace
    Invoke = Callable[[str, Mapping[str, str], bytes], execs.Completed]

# The bundled delegates overlay runs in-process (plugins.toml's `in_process` lists their modules for the build; the
# bridge runs host-local in-process in turn).
IN_PROCESS = {"bridge": "bridge.plugin", "host-local": "host_local.plugin"}
# The production seam: in-process for our bundled bridge/host-local, exec otherwise.
invoke = invoker(IN_PROCESS)


def find(plugin_type: str, paths: tuple[str, ...]) -> str:
    return find_plugin(plugin_type, paths, key="delegate.type", kind="delegate")


def run(command: str, config: dict[str, Any], *, env: Mapping[str, str], paths: tuple[str, ...],
        call: Invoke = invoke) -> bytes:
    """Run the delegate for `command`; its stdout (a result for ADD) or its own spec error, code kept."""
    plugin_type = str(config["type"])
    binary = find(plugin_type, paths)
    done = call(binary, {**env, "CNI_COMMAND": command}, jsonio.dumps(config).encode())
    if done.status != 0:
        raise delegate_error("delegate", plugin_type, command, done)
    return done.stdout
