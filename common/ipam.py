"""Delegation to the IPAM plugin named by `ipam.type`, found on CNI_PATH (SPEC §4, libcni's invoke.Delegate*).

The delegate gets the same environment (with CNI_COMMAND set to the verb) and the complete stdin config.
How it runs is the caller's `Invoke` (the one seam tests replace): `exec_plugin` always execs; `invoker(...)` runs
the bundled plugins a plugin declares (bridge: host-local) in-process. This module knows no plugin by name.
"""
from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # the typing module costs ~4 ms per plugin start; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    # (binary path, env, stdin) -> what it printed and its exit status
    Invoke = Callable[[str, Mapping[str, str], bytes], "execs.Completed"]

from . import exec as execs
from . import jsonio
from . import result as results
from .config import Node
from .errors import CniError, Code, ConfigError
from .skel import Request
from .timeline import mark
from .types import Result


def find_plugin(plugin_type: str, paths: tuple[str, ...], *, key: str = "ipam.type", kind: str = "IPAM") -> str:
    """The executable of a delegate plugin (named by the config key `key`) on CNI_PATH."""
    if not plugin_type or "/" in plugin_type or plugin_type in (".", ".."):
        raise ConfigError(f"invalid plugin name {plugin_type!r} at {key}")
    for directory in paths:
        candidate = os.path.join(directory, plugin_type)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise CniError(Code.INVALID_CONFIG, f"failed to find {kind} plugin {plugin_type!r} in CNI_PATH "
                   f"{':'.join(paths) or '(empty)'}")


def exec_plugin(binary: str, env: Mapping[str, str], stdin: bytes) -> execs.Completed:
    """Run a delegate as its own process (libcni's invoke.ExecPlugin)."""
    return execs.run([binary], input=stdin, env=env, timeout=120.0)


def invoker(in_process: Mapping[str, str]) -> Invoke:
    """The seam of a plugin that bundles delegates: `in_process` maps a plugin name to the module holding its
    PLUGIN (bridge: {"host-local": "host_local.plugin"}). Such a delegate runs in-process when the file on
    CNI_PATH is really this build's (is_bundled); any other (the Go plugin, a wrapper) is exec'd."""
    def invoke(binary: str, env: Mapping[str, str], stdin: bytes) -> execs.Completed:
        module = in_process.get(os.path.basename(binary))
        if module is not None and is_bundled(binary):
            return run_in_process(module, env, stdin)
        return exec_plugin(binary, env, stdin)
    return invoke


def delegate(command: str, request: Request, *, invoke: Invoke = exec_plugin) -> Result | None:
    """Run the IPAM plugin for `command`; returns its parsed result for ADD, None otherwise."""
    binary = find_plugin(request.conf.ipam_type, request.path)
    mark(f"IPAM {command} {request.conf.ipam_type}: start")
    done = invoke(binary, {**request.env, "CNI_COMMAND": command}, request.stdin)
    mark(f"IPAM {command} {request.conf.ipam_type}: done")
    if done.status != 0:
        raise delegate_error("IPAM", request.conf.ipam_type, command, done)
    if command != "ADD":
        return None
    try:
        data = jsonio.loads(done.stdout)
    except ValueError:
        raise CniError(Code.DECODING_FAILURE, f"IPAM plugin {request.conf.ipam_type!r} printed an undecodable "
                       f"result: {done.stdout[:200]!r}") from None
    return results.parse(data, request.cni_version, path=f"result of IPAM plugin {request.conf.ipam_type!r}")


MANIFEST = "executables.sha512"   # in the shared runtime folder, written by build/plugins.spec (sha512sum format)


def is_bundled(binary: str) -> bool:
    """True when exec'ing `binary` would run this very build's plugin of that name: it is the file next to our
    own executable (so it loads the same shared runtime) and its bytes are those the build recorded.

    Path or inode alone is not enough: an operator may replace `host-local` in place with the Go one or a
    logging wrapper, and that must then be exec'd. Speed: hashing the ~95 KB executable costs ~0.2 ms; running
    host-local in-process saves a whole interpreter start (~20 ms) per bridge ADD and DEL.
    """
    if not getattr(sys, "frozen", False):
        return False
    name = os.path.basename(binary)
    try:
        ours = os.stat(os.path.join(os.path.dirname(sys.executable), name))
        with open(binary, "rb") as exe:      # find_plugin checked it is a regular file
            found = os.fstat(exe.fileno())   # the bytes hashed are those of the file compared
            if (found.st_dev, found.st_ino) != (ours.st_dev, ours.st_ino):
                return False
            content = exe.read()
    except OSError:
        return False
    try:    # the builtin module: hashlib would load OpenSSL (~3 ms)
        from _sha512 import sha512
    except ImportError:  # pragma: no cover - a Python built without it
        from hashlib import sha512
    recorded = _recorded_digests()
    return name in recorded and sha512(content).hexdigest() == recorded[name]


def _recorded_digests() -> dict[str, str]:
    """name -> SHA-512 hex of each shipped executable; empty when the manifest is missing or unreadable."""
    try:
        with open(os.path.join(getattr(sys, "_MEIPASS", ""), MANIFEST), encoding="ascii") as manifest:
            lines = manifest.read().splitlines()
    except (OSError, ValueError):
        return {}
    pairs = (line.split("  ", 1) for line in lines)
    return {pair[1]: pair[0] for pair in pairs if len(pair) == 2}


def supported_versions(request: Request, *, invoke: Invoke = exec_plugin) -> tuple[str, ...] | None:
    """The spec versions the IPAM plugin lists for VERSION (libcni's GetVersionInfo); None when unreadable."""
    binary = find_plugin(request.conf.ipam_type, request.path)
    try:
        done = invoke(binary, {**request.env, "CNI_COMMAND": "VERSION"}, b'{"cniVersion":"1.1.0"}')
        answer = jsonio.loads(done.stdout) if done.status == 0 else None
    except (CniError, ValueError):
        return None
    versions = answer.get("supportedVersions") if isinstance(answer, dict) else None
    return tuple(v for v in versions if isinstance(v, str)) if isinstance(versions, list) else None


def run_in_process(module: str, env: Mapping[str, str], stdin: bytes) -> execs.Completed:
    """A bundled plugin's protocol handling (`module`.PLUGIN, shipped in the shared runtime folder), exactly as
    its own process would run it."""
    from .skel import dispatch
    plugin = __import__(module, fromlist=["PLUGIN"]).PLUGIN
    outcome = dispatch(plugin, env, lambda: stdin)
    if outcome.stderr:
        sys.stderr.write(outcome.stderr)
    return execs.Completed(outcome.status, outcome.stdout.encode(), outcome.stderr.encode())


def delegate_error(kind: str, plugin_type: str, command: str, done: execs.Completed) -> CniError:
    """The delegate's own spec error (code kept), or a description of what it printed."""
    try:
        data = jsonio.loads(done.stdout)
        error = Node(data) if isinstance(data, dict) else None   # read as libcni reads types.Error
        if error is not None and isinstance(error.get("code"), int):
            return CniError(error.get("code"), str(error.raw("msg", "")), str(error.raw("details", "")))
    except ValueError:
        pass
    text = (done.stdout or done.stderr).decode(errors="replace").strip() or "no error message"
    return CniError(Code.INTERNAL, f"{kind} plugin {plugin_type!r} {command} failed (exit {done.status}): {text}")
