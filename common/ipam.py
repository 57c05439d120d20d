"""Delegation to the IPAM plugin named by `ipam.type`, found on CNI_PATH (SPEC §4, libcni's invoke.Delegate*).

The delegate gets the same environment (with CNI_COMMAND set to the verb) and the complete stdin config.
"""
from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # the typing module costs ~4 ms per plugin start; annotations are strings
if TYPE_CHECKING:
    from typing import Mapping

from . import exec as execs
from . import jsonio
from . import result as results
from .config import Node
from .errors import CniError, Code, ConfigError
from .skel import Request
from .types import Result


def find_plugin(plugin_type: str, paths: tuple[str, ...]) -> str:
    if not plugin_type or "/" in plugin_type or plugin_type in (".", ".."):
        raise ConfigError(f"invalid plugin name {plugin_type!r} at ipam.type")
    for directory in paths:
        candidate = os.path.join(directory, plugin_type)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise CniError(Code.INVALID_CONFIG, f"failed to find IPAM plugin {plugin_type!r} in CNI_PATH "
                   f"{':'.join(paths) or '(empty)'}")


def delegate(command: str, request: Request, *, runner: execs.Runner = execs.run) -> Result | None:
    """Run the IPAM plugin for `command`; returns its parsed result for ADD, None otherwise."""
    binary = find_plugin(request.conf.ipam_type, request.path)
    env: Mapping[str, str] = {**request.env, "CNI_COMMAND": command}
    if runner is execs.run and _is_bundled_host_local(binary):
        done = _run_in_process(env, request.stdin)
    else:
        done = runner([binary], input=request.stdin, env=env, timeout=120.0)
    if done.status != 0:
        raise _delegate_error(request.conf.ipam_type, command, done)
    if command != "ADD":
        return None
    try:
        data = jsonio.loads(done.stdout)
    except ValueError:
        raise CniError(Code.DECODING_FAILURE, f"IPAM plugin {request.conf.ipam_type!r} printed an undecodable "
                       f"result: {done.stdout[:200]!r}") from None
    return results.parse(data, request.cni_version, path=f"result of IPAM plugin {request.conf.ipam_type!r}")


def _is_bundled_host_local(binary: str) -> bool:
    """True when `binary` is the host-local executable of this very build (same folder, same shared runtime).

    Speed: running it in-process saves a whole interpreter start (~60 ms) per bridge ADD and DEL. Any other
    host-local on CNI_PATH (the Go one, another version of ours) is still exec'd, as the delegation contract says.
    """
    if not getattr(sys, "frozen", False) or os.path.basename(binary) != "host-local":
        return False
    ours = os.path.join(os.path.dirname(sys.executable), "host-local")
    try:
        return os.path.samefile(binary, ours)
    except OSError:
        return False


def _run_in_process(env: Mapping[str, str], stdin: bytes) -> execs.Completed:
    """The bundled host-local's protocol handling, exactly as its own process would run it."""
    from host_local.plugin import PLUGIN  # shipped in the shared runtime folder

    from .skel import dispatch
    outcome = dispatch(PLUGIN, env, lambda: stdin)
    if outcome.stderr:
        sys.stderr.write(outcome.stderr)
    return execs.Completed(outcome.status, outcome.stdout.encode(), outcome.stderr.encode())


def _delegate_error(plugin_type: str, command: str, done: execs.Completed) -> CniError:
    """Re-raise the delegate's own spec error (code kept) or describe what it printed."""
    try:
        data = jsonio.loads(done.stdout)
        error = Node(data) if isinstance(data, dict) else None   # read as libcni reads types.Error
        if error is not None and isinstance(error.get("code"), int):
            return CniError(error.get("code"), str(error.raw("msg", "")), str(error.raw("details", "")))
    except ValueError:
        pass
    text = (done.stdout or done.stderr).decode(errors="replace").strip() or "no error message"
    return CniError(Code.INTERNAL, f"IPAM plugin {plugin_type!r} {command} failed (exit {done.status}): {text}")
