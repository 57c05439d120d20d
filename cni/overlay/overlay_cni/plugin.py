"""The overlay plugin's verbs: read subnet.env, build the delegate config, run the delegate (bridge).

ADD saves the delegate config before running it (a crash in between leaves a file DEL uses), DEL and CHECK
replay the saved one (rebuilt from subnet.env when missing), GC and STATUS use a freshly built one. The plugin
never talks to etcd: ADD and DEL work while the agent or etcd are down, as long as subnet.env exists.
"""
from __future__ import annotations

from common import jsonio
from common import result as results
from common.config import valid_attachments
from common.errors import CniError, Code, TryAgainError
from common.skel import Plugin, Request

from . import config, delegate, state, subnet_env

TYPE_CHECKING = False  # the typing module costs ~4 ms per plugin start; annotations are strings
if TYPE_CHECKING:
    from typing import Any

    from common.types import Result


def make_plugin(call: delegate.Invoke = delegate.invoke) -> Plugin:
    def run(command: str, request: Request, cfg: dict[str, Any]) -> bytes:
        return delegate.run(command, cfg, env=request.env, paths=request.path, call=call)

    def add(request: Request) -> Result:
        overlay = config.parse(request.conf)
        cfg = config.delegate_config(request.conf, overlay, subnet_env.read(overlay.subnet_file))
        state.save(overlay.data_dir, request.container_id, cfg)
        try:
            out = run("ADD", request, cfg)
        except CniError:
            state.remove(overlay.data_dir, request.container_id)
            raise
        return _result(out, request.cni_version, str(cfg["type"]))

    def delete(request: Request) -> None:
        overlay = config.parse(request.conf)
        cfg = _replayed(request, overlay)
        if cfg is not None:
            run("DEL", request, cfg)
        state.remove(overlay.data_dir, request.container_id)

    def check(request: Request) -> None:
        overlay = config.parse(request.conf)
        cfg = _replayed(request, overlay)
        if cfg is None:
            cfg = config.delegate_config(request.conf, overlay, subnet_env.read(overlay.subnet_file))
        run("CHECK", request, cfg)

    def gc(request: Request) -> None:
        overlay = config.parse(request.conf)
        valid = {container_id for container_id, _ in valid_attachments(request.conf.node)}
        try:
            env = subnet_env.read(overlay.subnet_file)
        except TryAgainError:
            env = None     # nothing to delegate to; our own stale state still goes
        if env is not None:
            run("GC", request, config.delegate_config(request.conf, overlay, env))
        for container_id in state.saved_ids(overlay.data_dir):
            if container_id not in valid:
                state.remove(overlay.data_dir, container_id)

    def status(request: Request) -> None:
        overlay = config.parse(request.conf)
        try:
            env = subnet_env.read(overlay.subnet_file)
        except TryAgainError as exc:
            raise CniError(Code.NOT_AVAILABLE, exc.msg) from None
        run("STATUS", request, config.delegate_config(request.conf, overlay, env))

    return Plugin(name="overlay", handlers={"ADD": add, "DEL": delete, "CHECK": check, "GC": gc,
                                            "STATUS": status})


def _replayed(request: Request, overlay: config.OverlayConf) -> dict[str, Any] | None:
    """The saved delegate config with this call's prevResult/runtimeConfig; rebuilt from subnet.env when none
    was saved; None when neither exists (a DEL then has nothing to undo)."""
    cfg = state.load(overlay.data_dir, request.container_id)
    if cfg is None:
        try:
            return config.delegate_config(request.conf, overlay, subnet_env.read(overlay.subnet_file))
        except TryAgainError:
            return None
    for key in ("prevResult", "runtimeConfig"):
        value = request.conf.node.get(key)
        if value is not None:
            cfg[key] = value
    return cfg


def _result(out: bytes, version: str, plugin_type: str) -> Result:
    try:
        data = jsonio.loads(out)
    except (ValueError, RecursionError):
        raise CniError(Code.DECODING_FAILURE, f"delegate plugin {plugin_type!r} printed an undecodable result: "
                       f"{out[:200]!r}") from None
    return results.parse(data, version, path=f"result of delegate plugin {plugin_type!r}")


PLUGIN = make_plugin()
