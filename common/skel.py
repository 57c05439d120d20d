"""The CNI protocol around a plugin's handlers: env validation, config decoding, version gates, output.

`dispatch()` is pure (env mapping + stdin reader in, exit status + stdout + stderr text out) so every protocol
case is unit-testable; `main()` is the only code that touches the real process environment and streams.
Handlers receive a `Request` and return a `types.Result` (rendered here at the config's cniVersion) or None.
"""
from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # the typing module costs ~4 ms per plugin start; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    Handler = Callable[["Request"], "Result | None"]

from . import jsonio
from . import version as versions
from .config import (
    NAME_PATTERN,
    NetConf,
    Node,
    base_netconf,
    decode,
    interface_name_problem,
    is_valid_name,
    parse_cni_args,
)
from .errors import CniError, Code
from .record import field, record
from .timeline import mark
from .types import Result

COMMANDS = ("ADD", "DEL", "CHECK", "VERSION", "GC", "STATUS")
MAX_STDIN = 1 << 20   # 1 MiB: real configs with prevResult are a few KiB; a 4 MiB one is refused (issue 8)

# Which variables each verb needs (as libcni's skel requires them), in the order they are reported.
REQUIRED_ENV = {
    "CNI_CONTAINERID": ("ADD", "DEL", "CHECK"),
    "CNI_NETNS": ("ADD", "CHECK"),
    "CNI_IFNAME": ("ADD", "DEL", "CHECK"),
    "CNI_PATH": ("ADD", "DEL", "CHECK", "GC", "STATUS"),
}


@record(frozen=True)
class Request:
    command: str
    container_id: str
    netns: str
    ifname: str
    args: str                       # raw CNI_ARGS
    path: tuple[str, ...]           # CNI_PATH split on ':'
    stdin: bytes
    conf: NetConf
    env: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def cni_version(self) -> str:
        return self.conf.cni_version

    def prev_result(self) -> Result | None:
        from . import result
        raw = self.conf.node.raw("prevResult")
        return None if raw is None else result.parse(raw, self.cni_version)

    def cni_args(self, known: tuple[str, ...]) -> dict[str, str]:
        return parse_cni_args(self.args, known)




@record(frozen=True)
class Plugin:
    name: str                               # "bridge", "host-local", "portmap"
    handlers: Mapping[str, Handler]         # verb -> handler; GC/STATUS may be absent (success, no output)
    version: str = "0.1.0"

    def about(self) -> str:
        return (f"CNI {self.name} plugin (pycni) v{self.version}; "
                f"CNI protocol versions supported: {', '.join(versions.SUPPORTED)}")


@record(frozen=True)
class Outcome:
    status: int
    stdout: str = ""
    stderr: str = ""


def dispatch(plugin: Plugin, env: Mapping[str, str], read_stdin: Callable[[], bytes],
             same_netns: Callable[[str], bool] = lambda path: False) -> Outcome:
    command = env.get("CNI_COMMAND", "")
    if not command:
        return Outcome(0, stderr=plugin.about() + "\n")
    cni_version = versions.CURRENT
    try:
        if command == "VERSION":
            return Outcome(0, stdout=jsonio.dumps(versions.version_info()) + "\n")
        if command not in COMMANDS:
            raise CniError(Code.INVALID_ENVIRONMENT, f"unknown CNI_COMMAND {command!r}: expected one of "
                           f"{', '.join(COMMANDS)}")
        _check_env(command, env)
        data = decode(_read_limited(read_stdin))
        cni_version = _reply_version(data)
        conf = base_netconf(data)
        versions.check_supported(conf.cni_version)
        versions.check_command_allowed(command, conf.cni_version)
        netns = env.get("CNI_NETNS", "")
        if command in ("ADD", "DEL", "CHECK") and netns and _override_off(env) and same_netns(netns):
            raise CniError(Code.INVALID_NETNS, f"CNI_NETNS {netns!r} is the plugin's own network namespace")
        request = Request(
            command=command, container_id=env.get("CNI_CONTAINERID", ""), netns=netns,
            ifname=env.get("CNI_IFNAME", ""), args=env.get("CNI_ARGS", ""),
            path=tuple(p for p in env.get("CNI_PATH", "").split(os.pathsep) if p),
            stdin=data_bytes(read_stdin), conf=conf, env=env)
        handler = plugin.handlers.get(command)
        mark(f"{command} {plugin.name}: request read")
        result = handler(request) if handler else None
        mark(f"{command} {plugin.name}: done")
        if result is None:
            return Outcome(0)
        from . import result as results
        return Outcome(0, stdout=jsonio.dumps(results.render(result, conf.cni_version), 4) + "\n")
    except CniError as exc:
        return Outcome(1, stdout=jsonio.dumps(exc.to_json(cni_version), 4) + "\n",
                       stderr=f"{plugin.name}: {exc.msg}\n")


def _reply_version(data: dict[str, object]) -> str:
    """Errors are labelled with the config's version when we speak it, else with ours."""
    declared = Node(data).get("cniVersion") or "0.1.0"
    return declared if isinstance(declared, str) and declared in versions.SUPPORTED else versions.CURRENT


def _check_env(command: str, env: Mapping[str, str]) -> None:
    missing = [var for var, verbs in REQUIRED_ENV.items() if command in verbs and not env.get(var)]
    if missing:
        raise CniError(Code.INVALID_ENVIRONMENT, f"required environment variables missing for {command}: "
                       f"{', '.join(missing)}")
    if command in ("ADD", "DEL", "CHECK"):
        container_id = env["CNI_CONTAINERID"]
        if not is_valid_name(container_id):
            raise CniError(Code.INVALID_ENVIRONMENT, f"invalid CNI_CONTAINERID {container_id!r}: must match "
                           f"{NAME_PATTERN}")
        _check_ifname(env["CNI_IFNAME"])


def _check_ifname(name: str) -> None:
    problem = interface_name_problem(name)
    if problem:
        raise CniError(Code.INVALID_ENVIRONMENT, f"invalid CNI_IFNAME {name!r}: {problem}")


def _override_off(env: Mapping[str, str]) -> bool:
    return env.get("CNI_NETNS_OVERRIDE", "").lower() not in ("1", "true")


def _read_limited(read_stdin: Callable[[], bytes]) -> bytes:
    try:
        data = read_stdin()
    except OSError as exc:
        raise CniError(Code.IO_FAILURE, f"failed to read network configuration from stdin: {exc}") from None
    if len(data) > MAX_STDIN:
        raise CniError(Code.DECODING_FAILURE, f"network configuration too large: {len(data)} bytes "
                       f"(limit {MAX_STDIN})")
    return data


def data_bytes(read_stdin: Callable[[], bytes]) -> bytes:
    return read_stdin()


def is_own_netns(path: str) -> bool:
    """True when `path` is the network namespace this process runs in (libcni's ErrInvalidNetNS check)."""
    try:
        target, own = os.stat(path), os.stat("/proc/self/ns/net")
    except OSError:
        return False
    return (target.st_dev, target.st_ino) == (own.st_dev, own.st_ino)


def main(plugin: Plugin) -> None:
    """Process entry point: run one CNI operation with the real environment, streams and exit status."""
    mark("modules imported")
    cached: list[bytes] = []

    def read_stdin() -> bytes:
        if not cached:
            cached.append(sys.stdin.buffer.read(MAX_STDIN + 1))
        return cached[0]

    try:
        outcome = dispatch(plugin, os.environ, read_stdin, same_netns=is_own_netns)
    except Exception as exc:  # a bug: still answer with spec error JSON, never a bare traceback
        if os.environ.get("PYCNI_DEBUG"):
            import traceback
            traceback.print_exc()
        error = CniError(Code.INTERNAL, f"internal error: {type(exc).__name__}: {exc}")
        outcome = Outcome(1, stdout=jsonio.dumps(error.to_json(versions.CURRENT), 4) + "\n",
                          stderr=f"{plugin.name}: {error.msg}\n")
    if outcome.stdout:
        sys.stdout.write(outcome.stdout)
    if outcome.stderr:
        sys.stderr.write(outcome.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    mark("answered")
    # Speed: skip interpreter teardown (module and object destruction costs up to tens of ms). Every file
    # and lock is already closed or released by the handlers; the kernel drops the rest with the process.
    os._exit(outcome.status)
