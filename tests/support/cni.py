"""Calling a plugin the way a runtime does: the CNI environment, stdin, and the answer (exit status, stdout,
stderr) read back as a result or a spec error.

- `cni_env()` builds the environment of one call;
- `in_process()` runs a plugin object through `common.skel.dispatch` (no process, no root);
- `run()` runs an executable (`plugin_argv()`: dist/cni-bin, /usr/lib/cni, or the source tree), inside a node
  namespace when one is given (`nsenter --net`, which execs the plugin: its pid is the plugin's own);
  `start()`/`finish()` do the same in two steps, for concurrent calls;
- `Caller` is one plugin (object or executable) with the environment a test gives all its calls;
- all of them give an `Answer`; `ok()` takes a success, `spec_error()` and `error()` a spec error.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .netns import Netns
from .paths import SYSTEM_PATH

# The verbs the spec sends the container variables to (GC and STATUS get none, VERSION needs none).
CONTAINER_VERBS = ("ADD", "DEL", "CHECK")
NSENTER = shutil.which("nsenter", path=SYSTEM_PATH) or "nsenter"   # absolute: the plugin's PATH may lack it


def cni_env(command: str, *, cid: str = "c1", netns: str = "", ifname: str = "eth0", args: str = "",
            cni_path: str | Path = "/nonexistent", path: str | None = SYSTEM_PATH, container: bool | None = True,
            **extra: str | None) -> dict[str, str]:
    """The environment of one call. `container`: True sets CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME and CNI_ARGS for
    every verb, False for none, None for the verbs the spec sends them to (ADD, DEL, CHECK). `path=None` leaves
    PATH out; `extra` adds variables (or replaces them; None removes one)."""
    env: dict[str, str | None] = {"PATH": path, "CNI_COMMAND": command, "CNI_PATH": str(cni_path)}
    if container or (container is None and command in CONTAINER_VERBS):
        env.update(CNI_CONTAINERID=cid, CNI_NETNS=netns, CNI_IFNAME=ifname, CNI_ARGS=args)
    env.update(extra)
    return {name: value for name, value in env.items() if value is not None}


def stdin_of(conf: Any) -> bytes:
    """What goes on stdin: bytes as they are, anything else as JSON."""
    return conf if isinstance(conf, bytes) else json.dumps(conf).encode()


@dataclass(frozen=True)
class Answer:
    """A plugin's answer: exit status, stdout and stderr (text, undecodable bytes replaced)."""
    status: int
    stdout: str = ""
    stderr: str = ""

    @classmethod
    def of(cls, done: subprocess.CompletedProcess[bytes]) -> Answer:
        return cls(done.returncode, done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace"))

    @property
    def out(self) -> Any:
        """stdout as JSON (None when empty)."""
        return json.loads(self.stdout) if self.stdout.strip() else None

    @property
    def code(self) -> int | None:
        """The spec error's code (None unless the call failed with an error object)."""
        out = self.out if self.status else None
        return out.get("code") if isinstance(out, dict) else None


def in_process(plugin: Any, env: Mapping[str, str], conf: Any, **options: Any) -> Answer:
    """`plugin` (a common.skel.Plugin) through common.skel.dispatch (`options`: its keywords): any exception but a
    CniError escapes, so a traceback fails the test."""
    from common.skel import dispatch
    data = stdin_of(conf)
    outcome = dispatch(plugin, env, lambda: data, **options)
    return Answer(outcome.status, outcome.stdout, outcome.stderr)


def _argv(argv: Sequence[str | Path], inside: Netns | None) -> list[str]:
    argv = [str(arg) for arg in argv]
    return [NSENTER, f"--net={inside.path}", "--", *argv] if inside is not None else argv


def run(argv: Sequence[str | Path], env: Mapping[str, str], conf: Any = b"", *, inside: Netns | None = None,
        timeout: float = 60) -> Answer:
    """One call of the program `argv` (inside the namespace `inside` when given) with `env`, `conf` on stdin."""
    return Answer.of(subprocess.run(_argv(argv, inside), env=dict(env), input=stdin_of(conf), capture_output=True,
                                    timeout=timeout, check=False))


def start(argv: Sequence[str | Path], env: Mapping[str, str], *, inside: Netns | None = None,
          conf: Any = None) -> subprocess.Popen[bytes]:
    """The call started: stdin stays open for `finish()`, or gets `conf` (and is closed) at once."""
    proc = subprocess.Popen(_argv(argv, inside), env=dict(env), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    if conf is not None:
        assert proc.stdin is not None
        try:
            proc.stdin.write(stdin_of(conf))
            proc.stdin.close()
        except BrokenPipeError:
            pass
        proc.stdin = None   # given and closed: finish() then only collects (communicate() would flush it)
    return proc


def finish(proc: subprocess.Popen[bytes], conf: Any = None, *, timeout: float = 120) -> Answer:
    out, err = proc.communicate(None if conf is None else stdin_of(conf), timeout=timeout)
    return Answer(proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"))


class Caller:
    """One plugin and the environment every call of a test shares: `target` is a common.skel.Plugin (run
    in-process) or an executable's argv (run as a process, inside the namespace `inside` when given). `env` are
    cni_env()'s keywords or variables; a call's own keywords go over them, and may also name `inside` and
    `timeout`:

        bridge = Caller(plugin_argv("bridge", dist_bin), inside=host_ns, cni_path=dist_bin)
        result = ok(bridge("ADD", conf, cid="c1", netns=pod.path))
    """

    def __init__(self, target: Any, *, inside: Netns | None = None, timeout: float = 60, **env: Any) -> None:
        self.target, self.inside, self.timeout, self.defaults = target, inside, timeout, env

    @property
    def in_process(self) -> bool:
        return hasattr(self.target, "handlers")

    def env(self, command: str, **env: Any) -> dict[str, str]:
        return cni_env(command, **{**self.defaults, **env})

    def __call__(self, command: str, conf: Any, *, inside: Netns | None = None, timeout: float | None = None,
                 **env: Any) -> Answer:
        environ = self.env(command, **env)
        if self.in_process:
            return in_process(self.target, environ, conf)
        return run(self.target, environ, conf, inside=inside or self.inside, timeout=timeout or self.timeout)

    def start(self, command: str, conf: Any = None, *, inside: Netns | None = None,
              **env: Any) -> subprocess.Popen[bytes]:
        """The call as a process, started (see `start()`); `finish()` collects its answer."""
        return start(self.target, self.env(command, **env), inside=inside or self.inside, conf=conf)


def ok(answer: Answer) -> Any:
    """A success: exit 0, no traceback; the result (None when stdout is empty)."""
    assert answer.status == 0, (answer.stdout, answer.stderr)
    assert "Traceback" not in answer.stderr, answer.stderr
    return answer.out


def spec_error(answer: Answer, *codes: int) -> dict[str, Any]:
    """A spec error: exit 1 and one JSON object with an int code and a message, never a traceback, never a bug
    escaping as 999 ("internal error: ..."); its code one of `codes` when given. Returns the object."""
    out, err = answer.stdout, answer.stderr
    assert "Traceback" not in err and "Traceback" not in out, err
    assert answer.status == 1, (answer.status, out, err)
    error = json.loads(out)
    assert isinstance(error, dict) and type(error.get("code")) is int, out
    assert isinstance(error.get("msg"), str) and error["msg"], out
    assert error["code"] != 999 or "internal error:" not in error["msg"], f"a bug escaped as 999: {out}"
    if codes:
        assert error["code"] in codes, out
    return error


def error(answer: Answer) -> tuple[int, str]:
    """A spec error's (code, msg)."""
    found = spec_error(answer)
    return found["code"], found["msg"]


def request(command: str, conf: dict[str, Any], *, cid: str = "", netns: str = "", ifname: str = "",
            args: str = "", path: Sequence[str | Path] = (), env: Mapping[str, str] | None = None,
            stdin: bytes | None = None) -> Any:
    """A common.skel.Request as dispatch makes it (stdin: `conf` as JSON unless given), for calling a plugin's
    steps directly."""
    from common.config import base_netconf
    from common.skel import Request
    return Request(command=command, container_id=cid, netns=netns, ifname=ifname, args=args,
                   path=tuple(str(p) for p in path), stdin=stdin_of(conf) if stdin is None else stdin,
                   conf=base_netconf(conf),
                   env=dict(env) if env is not None else {"CNI_COMMAND": command})
