"""Running the delegate plugin (bridge by default) for a verb, as libcni's invoke.DelegateAdd/Del do.

Our own bundled bridge runs in-process (its protocol handling, exactly as its own process would run it): that
saves a whole interpreter start per ADD and DEL. Any other plugin of that name on CNI_PATH (the Go bridge,
another build of ours) is exec'd with the delegate config on stdin.
"""
from __future__ import annotations

import os
import sys

from common import exec as execs
from common import jsonio
from common.config import Node
from common.errors import CniError, Code, ConfigError
from common.ipam import is_bundled

TYPE_CHECKING = False  # the typing module costs ~4 ms per plugin start; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any
    # (binary path, env, stdin) -> Completed: the one seam tests replace
    Invoke = Callable[[str, Mapping[str, str], bytes], execs.Completed]

IN_PROCESS = {"bridge": "bridge.plugin", "host-local": "host_local.plugin"}


def find(plugin_type: str, paths: tuple[str, ...]) -> str:
    if not plugin_type or "/" in plugin_type or plugin_type in (".", ".."):
        raise ConfigError(f"invalid plugin name {plugin_type!r} at delegate.type")
    for directory in paths:
        candidate = os.path.join(directory, plugin_type)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise CniError(Code.INVALID_CONFIG, f"failed to find delegate plugin {plugin_type!r} in CNI_PATH "
                   f"{':'.join(paths) or '(empty)'}")


def invoke(binary: str, env: Mapping[str, str], stdin: bytes) -> execs.Completed:
    """The production seam: in-process for our bundled bridge/host-local, exec otherwise."""
    module = IN_PROCESS.get(os.path.basename(binary))
    if module is not None and is_bundled(binary):   # really this build's file, not a replacement
        return _run_in_process(module, env, stdin)
    return execs.run([binary], input=stdin, env=env, timeout=120.0)


def run(command: str, config: dict[str, Any], *, env: Mapping[str, str], paths: tuple[str, ...],
        call: Invoke = invoke) -> bytes:
    """Run the delegate for `command`; its stdout (a result for ADD) or its own spec error, code kept."""
    plugin_type = str(config["type"])
    binary = find(plugin_type, paths)
    done = call(binary, {**env, "CNI_COMMAND": command}, jsonio.dumps(config).encode())
    if done.status != 0:
        raise _error(plugin_type, command, done)
    return done.stdout


def _run_in_process(module: str, env: Mapping[str, str], stdin: bytes) -> execs.Completed:
    from common.skel import dispatch
    plugin = __import__(module, fromlist=["PLUGIN"]).PLUGIN
    outcome = dispatch(plugin, env, lambda: stdin)
    if outcome.stderr:
        sys.stderr.write(outcome.stderr)
    return execs.Completed(outcome.status, outcome.stdout.encode(), outcome.stderr.encode())


def _error(plugin_type: str, command: str, done: execs.Completed) -> CniError:
    """The delegate's own spec error (code kept), or a description of what it printed."""
    try:
        data = jsonio.loads(done.stdout)
        error = Node(data) if isinstance(data, dict) else None
        if error is not None and isinstance(error.get("code"), int):
            return CniError(error.get("code"), str(error.raw("msg", "")), str(error.raw("details", "")))
    except (ValueError, CniError):
        pass
    text = (done.stdout or done.stderr).decode(errors="replace").strip() or "no error message"
    return CniError(Code.INTERNAL, f"delegate plugin {plugin_type!r} {command} failed (exit {done.status}): {text}")
