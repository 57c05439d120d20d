"""tuning's verbs (reference: plugins/meta/tuning): sysctls and link attributes of CNI_IFNAME in the container.

ADD validates everything first (config, CNI_ARGS, prevResult, sysctl keys, the allowlist), then, inside the pod's
netns, writes the sysctls, saves the link's original attributes (atomically; a second ADD keeps the originals an
earlier one saved) and changes them. A failure undoes what this ADD changed, sysctls included, and names the key
and value. DEL restores from the file and never fails for what is gone. CHECK compares. GC removes the restore
files of attachments that are no longer valid; STATUS succeeds when the config parses.
"""
from __future__ import annotations

import errno as errnos
import os
import sys

TYPE_CHECKING = False  # the typing module costs ~4 ms per plugin start; annotations are strings
if TYPE_CHECKING:
    from typing import Any

    from .host import Pod

from common.config import same_text, valid_attachments
from common.errors import CniError, Code, ConfigError
from common.netlink import LinkError
from common.netns import NetnsGone, NotANetns
from common.record import replace
from common.scoped import Undo
from common.skel import Plugin, Request
from common.types import Result

from . import config, restore, sysctls
from .config import Setting, Sysctl, TuningConf
from .host import Host

LABELS = {"mac": "MAC address", "promisc": "promiscuous mode", "mtu": "MTU", "allmulti": "all-multicast mode",
          "txQLen": "transmit queue length"}
# What the kernel answers to a value it will not take: the config's fault (code 7); other refusals are 999.
BAD_VALUE = (errnos.EINVAL, errnos.ERANGE, errnos.EADDRNOTAVAIL, errnos.ENOENT)


def _log(text: str) -> None:
    sys.stderr.write(f"tuning: {text}\n")


def add(req: Request, host: Host) -> Result:
    conf, prev, files = _validated(req, host)
    with host.enter(req.netns) as pod, Undo() as undo:
        for sysctl, path in files:
            _write_sysctl(pod, sysctl, path, undo)
        if conf.link_settings():
            _tune_link(req, host, pod, conf, undo)
        undo.pop_all()
    return _with_mac(prev, req.ifname, conf.mac)


def check(req: Request, host: Host) -> None:
    conf, _prev, files = _validated(req, host, allowlist=False)
    with host.enter(req.netns) as pod:
        for sysctl, path in files:
            try:
                current = pod.read_sysctl(path)
            except OSError as exc:
                raise CniError(Code.INTERNAL, f"cannot read sysctl {sysctl.key} ({path}): {exc.strerror}") from None
            mismatch = restore.sysctl_mismatch(path, sysctl.value, current)
            if mismatch:
                raise CniError(Code.INTERNAL, mismatch)
        if not conf.link_settings():
            return None
        found = pod.link(req.ifname)
        if found is None:
            raise CniError(Code.INTERNAL, f"Cannot find container link {req.ifname}")
        mismatch = restore.link_mismatch(conf, found[1], req.ifname)
        if mismatch:
            raise CniError(Code.INTERNAL, mismatch)
    return None


def delete(req: Request, host: Host) -> None:
    """Restore the saved attributes (MTU, MAC, promisc, allmulti, txQLen) and remove the file. Nothing to
    restore onto (no netns, no link) or nothing to restore from (no file, an unreadable one) is success, and the
    file goes; only a restore the kernel refuses keeps it (logged, as the reference: DEL still succeeds)."""
    path = os.path.join(config.data_dir(req.conf), restore.file_name(req.container_id, req.ifname))
    data = host.read(path)
    if data is None:
        host.remove(path)   # a killed ADD's temporary file
        return None
    try:
        saved = restore.parse(data)
    except ValueError as exc:
        _log(f"removing the unusable restore file {path}: {exc}")
        host.remove(path)
        return None
    if not req.netns:
        host.remove(path)
        return None
    try:
        with host.enter(req.netns) as pod:
            if _restore(pod, req.ifname, saved, path):
                host.remove(path)
    except (NetnsGone, NotANetns):
        host.remove(path)
    except CniError as exc:
        _log(f"cannot restore {req.ifname} from {path}: {exc.msg} (file kept)")
    return None


def gc(req: Request, host: Host) -> None:
    """Remove the restore files (and leftover temporary files) of attachments not in cni.dev/valid-attachments."""
    valid = valid_attachments(req.conf.node)   # code 7 before anything is removed
    keep = {restore.file_name(cid, ifname) for cid, ifname in valid}
    directory = config.data_dir(req.conf)
    for name in host.names(directory):
        own = name[1:-4] if name.startswith(".") and name.endswith(".json.tmp") else name
        if own.endswith(".json") and not own.startswith(".") and own not in keep:
            host.remove(os.path.join(directory, own))
    return None


def status(req: Request, host: Host) -> None:
    config.parse(req.conf, "")
    return None


# --- ADD's steps -----------------------------------------------------------------------------------------

def _validated(req: Request, host: Host, *, allowlist: bool = True
               ) -> tuple[TuningConf, Result, list[tuple[Sysctl, str]]]:
    conf = config.parse(req.conf, req.args)
    prev = req.prev_result()
    if prev is None:
        raise ConfigError("missing prevResult: tuning must be called as a chained plugin")
    files = [(sysctl, sysctls.resolve(sysctl, req.ifname)) for sysctl in conf.sysctls]
    text = host.allowlist() if allowlist and conf.sysctls else None
    if text is not None:
        sysctls.check_allowed(conf.sysctls, text, host.allowlist_path)
    return conf, prev, files


def _quietly(step: Any, *args: Any) -> None:
    """An undo step: a failure there is logged, so that the error reported stays the one that made ADD fail."""
    try:
        step(*args)
    except Exception as exc:   # noqa: BLE001 - best effort by design
        _log(f"rollback step failed: {exc}")


def _write_sysctl(pod: Pod, sysctl: Sysctl, path: str, undo: Undo) -> None:
    try:
        before: str | None = pod.read_sysctl(path).rstrip("\n")
    except OSError:
        before = None   # write-only (or missing: the write says so)
    try:
        pod.write_sysctl(path, sysctl.value)
    except OSError as exc:
        code = Code.INVALID_CONFIG if exc.errno in BAD_VALUE else Code.INTERNAL
        raise CniError(code, f"cannot set sysctl {sysctl.key} to {sysctl.value!r} ({sysctl.source}, {path}): "
                       f"{exc.strerror}") from None
    if before is not None and before != sysctl.value:
        undo.callback(_quietly, pod.write_sysctl, path, before)


def _tune_link(req: Request, host: Host, pod: Pod, conf: TuningConf, undo: Undo) -> None:
    found = pod.link(req.ifname)
    if found is None:
        raise CniError(Code.INTERNAL, f"no interface {req.ifname!r} (CNI_IFNAME) in the container's network "
                       f"namespace {req.netns!r}")
    index, state = found
    _save_originals(req, host, conf, state, undo)
    for key, setting in conf.link_settings():
        if state[key] == setting.value:
            continue
        try:
            pod.set(index, key, setting.value)
        except LinkError as exc:
            raise _refused(req.ifname, key, setting, exc) from None
        undo.callback(_quietly, pod.set, index, key, state[key])


def _save_originals(req: Request, host: Host, conf: TuningConf, state: dict[str, Any],
                    undo: Undo) -> None:
    """Write the restore file before any change (a killed ADD leaves the originals for DEL), keeping what an
    earlier ADD of the same attachment saved; undone to its previous content (or removal) on failure."""
    path = os.path.join(conf.data_dir, restore.file_name(req.container_id, req.ifname))
    try:
        before = host.read(path)
        try:
            existing = restore.parse(before) if before is not None else None
        except ValueError:
            existing = None
        data = restore.render(restore.originals([key for key, _ in conf.link_settings()], state, existing))
        if data == before:
            return
        host.write(path, data)
    except OSError as exc:
        raise CniError(Code.IO_FAILURE, f"cannot save the original attributes of {req.ifname} in {path} "
                       f"(dataDir): {exc.strerror}") from None
    if before is None:
        undo.callback(_quietly, host.remove, path)
    else:
        undo.callback(_quietly, host.write, path, before)


def _refused(ifname: str, key: str, setting: Setting, exc: LinkError) -> CniError:
    code = Code.INVALID_CONFIG if exc.errno in BAD_VALUE else Code.INTERNAL
    value = str(setting.value).lower() if isinstance(setting.value, bool) else setting.value
    reason = f"{errnos.errorcode.get(exc.errno, exc.errno)} ({os.strerror(exc.errno)})"
    return CniError(code, f"cannot set the {LABELS[key]} of {ifname} to {value} ({setting.source}): the kernel "
                    f"refused it: {reason}")


def _with_mac(prev: Result, ifname: str, mac: Setting | None) -> Result:
    """The new MAC on prevResult's interfaces named CNI_IFNAME (as the reference)."""
    if mac is None:
        return prev
    return replace(prev, interfaces=tuple(replace(iface, mac=mac.value) if same_text(iface.name, ifname) else iface
                                          for iface in prev.interfaces))


# --- DEL's steps -----------------------------------------------------------------------------------------

def _restore(pod: Pod, ifname: str, saved: dict[str, Any], path: str) -> bool:
    """True when the file can go: every saved attribute restored, or the link gone."""
    found = pod.link(ifname)
    if found is None:
        return True
    index, state = found
    failures = []
    for key, value in restore.restore_steps(saved):
        if state[key] == value:
            continue
        try:
            pod.set(index, key, value)
        except LinkError as exc:
            failures.append(f"{LABELS[key]} {value}: {exc.msg}")
    if failures:
        _log(f"cannot restore {ifname} from {path}: {'; '.join(failures)} (file kept)")
    return not failures


def make_plugin(host: Host | None = None) -> Plugin:
    """The plugin with its effects behind `host` (tests inject a fake pod and a temporary allowlist path)."""
    h = host or Host()
    return Plugin(name="tuning", handlers={
        "ADD": lambda req: add(req, h), "DEL": lambda req: delete(req, h), "CHECK": lambda req: check(req, h),
        "GC": lambda req: gc(req, h), "STATUS": lambda req: status(req, h)})


PLUGIN = make_plugin()
