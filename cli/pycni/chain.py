"""libcni 1.1's AddNetworkList / CheckNetworkList / DelNetworkList, so that what `pycni attach` adds, cnitool,
containerd or podman can CHECK and DEL, and the reverse (libcni/api.go):

- each plugin's config is the conflist entry with `name` and `cniVersion` of the list injected, `prevResult` (the
  previous plugin's result on ADD, the cached result on CHECK/DEL) and `runtimeConfig` holding only the capability
  args the plugin declares in `capabilities` (the key replaced whole, and only when one matches);
- plugins are found on the CNI path, first directory first, and get CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS,
  CNI_ARGS, CNI_IFNAME and CNI_PATH on top of our environment;
- after a successful ADD the final result is cached in <cache-dir>/results/<network>-<containerID>-<ifname> as
  `{"kind":"cniCacheV1","containerId","config" (the conflist's bytes, base64),"ifName","networkName","cniArgs",
  "capabilityArgs","result"}` (dir 0700, file 0600); DEL runs the plugins in reverse with the cached result as
  prevResult (cniVersion >= 0.4.0) and then removes the entry; CHECK needs >= 0.4.0 and honours disableCheck;
- GC (GCNetworkList) sends each plugin its config with `name`, `cniVersion` and `cni.dev/valid-attachments` (and
  the pre-1.1.0 spelling `cni.dev/attachments`, as libcni does) and no CNI_CONTAINERID/NETNS/IFNAME; disableGC skips
  it. One departure: libcni sends no GC to a list below cniVersion 1.1.0, pycni sends it at 1.1.0 to every plugin
  whose VERSION lists 1.1.0 (our conflists stay at 1.0.0 so that runtimes with libcni 1.1 and the Go plugins can
  use them); a plugin that predates GC (Go's 1.1.1: "unknown CNI_COMMAND") is skipped.
"""
from __future__ import annotations

import base64
import json
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import PluginError, UserError

CACHE_KIND = "cniCacheV1"
_VALID_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$")


@dataclass(frozen=True)
class ConfList:
    name: str
    cni_version: str
    plugins: list[dict[str, Any]]
    raw: bytes                      # the file's bytes: what libcni caches as `config`
    disable_check: bool = False
    path: Path | None = None
    disable_gc: bool = False

    @classmethod
    def from_bytes(cls, raw: bytes, path: Path | None = None) -> ConfList:
        where = str(path) if path else "the cached config"
        try:
            data = json.loads(raw)
        except ValueError as e:
            raise UserError(f"{where} is not valid JSON: {e}") from None
        if not isinstance(data, dict) or not isinstance(data.get("plugins"), list) or not data["plugins"]:
            raise UserError(f"{where} is not a conflist (no \"plugins\" list)")
        if not all(isinstance(p, dict) and isinstance(p.get("type"), str) for p in data["plugins"]):
            raise UserError(f"{where}: every plugin needs a \"type\"")
        return cls(name=str(data.get("name", "")), cni_version=str(data.get("cniVersion", "")),
                   plugins=data["plugins"], raw=raw, disable_check=data.get("disableCheck") is True, path=path,
                   disable_gc=data.get("disableGC") is True)

    def capabilities(self) -> set[str]:
        return {cap for p in self.plugins for cap, on in (p.get("capabilities") or {}).items() if on is True}


@dataclass(frozen=True)
class Runtime:
    """libcni's RuntimeConf."""
    container_id: str
    netns: str
    ifname: str = "eth0"
    args: list[list[str]] = field(default_factory=list)
    capability_args: dict[str, Any] = field(default_factory=dict)


def _version(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split("."))
    except ValueError:
        raise UserError(f"invalid cniVersion {text!r} in the network's config") from None


def validate(conflist: ConfList, rt: Runtime) -> None:
    """libcni's utils.Validate* checks, worded for a person."""
    if not _VALID_NAME.match(rt.container_id):
        raise UserError(f"invalid container ID {rt.container_id!r}: letters, digits, '_', '.', '-' only, "
                        "starting with a letter or digit")
    if not _VALID_NAME.match(conflist.name):
        raise UserError(f"invalid network name {conflist.name!r} in {conflist.path}")
    name = rt.ifname
    if not name or len(name) > 15 or name in (".", "..") or any(c in "/:" or c.isspace() for c in name):
        raise UserError(f"invalid interface name {name!r}: 1 to 15 characters, no '/', ':' or whitespace")


class Chain:
    def __init__(self, cni_path: list[str], cache_dir: Path) -> None:
        self.cni_path, self.cache_dir = cni_path, cache_dir
        self._versions: dict[str, tuple[str, ...] | None] = {}

    # --- the cache ------------------------------------------------------------------------------------------------
    def cache_file(self, network: str, rt: Runtime) -> Path:
        return self.cache_dir / "results" / f"{network}-{rt.container_id}-{rt.ifname}"

    def cached(self, network: str, rt: Runtime) -> dict[str, Any] | None:
        try:
            data = json.loads(self.cache_file(network, rt).read_bytes())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) and data.get("kind") == CACHE_KIND else None

    def _cache_add(self, conflist: ConfList, rt: Runtime, result: dict[str, Any]) -> None:
        entry: dict[str, Any] = {"kind": CACHE_KIND, "containerId": rt.container_id,
                                 "config": base64.b64encode(conflist.raw).decode(), "ifName": rt.ifname,
                                 "networkName": conflist.name}
        if rt.args:
            entry["cniArgs"] = rt.args
        if rt.capability_args:
            entry["capabilityArgs"] = rt.capability_args
        entry["result"] = result
        path = self.cache_file(conflist.name, rt)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(json.dumps(entry, separators=(",", ":")).encode())
        os.replace(tmp, path)

    # --- running plugins ------------------------------------------------------------------------------------------
    def find(self, plugin_type: str) -> str:
        for directory in self.cni_path:
            candidate = os.path.join(directory, plugin_type)
            if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                return candidate
        raise UserError(f"plugin {plugin_type!r} not found in --cni-path {':'.join(self.cni_path)!r}")

    def _config(self, conflist: ConfList, plugin: dict[str, Any], prev: dict[str, Any] | None,
                rt: Runtime) -> bytes:
        conf = dict(plugin)
        conf["name"], conf["cniVersion"] = conflist.name, conflist.cni_version
        if prev is not None:
            conf["prevResult"] = prev
        runtime_config = {cap: rt.capability_args[cap] for cap, on in (plugin.get("capabilities") or {}).items()
                          if on is True and cap in rt.capability_args}
        if runtime_config:
            conf["runtimeConfig"] = runtime_config
        return json.dumps(conf, sort_keys=True, separators=(",", ":")).encode()

    def _exec(self, verb: str, conflist: ConfList, plugin: dict[str, Any], prev: dict[str, Any] | None,
              rt: Runtime) -> dict[str, Any] | None:
        return self._exec_raw(verb, plugin, conflist.name, self._config(conflist, plugin, prev, rt), rt)

    def _exec_raw(self, verb: str, plugin: dict[str, Any], network: str, stdin: bytes,
                  rt: Runtime) -> dict[str, Any] | None:
        path = self.find(plugin["type"])
        env = dict(os.environ, CNI_COMMAND=verb, CNI_CONTAINERID=rt.container_id, CNI_NETNS=rt.netns,
                   CNI_ARGS=";".join("=".join(kv) for kv in rt.args), CNI_IFNAME=rt.ifname,
                   CNI_PATH=":".join(self.cni_path))
        done = subprocess.run([path], input=stdin, env=env, stdout=subprocess.PIPE, check=False)
        description = f"type={plugin['type']!r} name={network!r}"
        try:
            answer = json.loads(done.stdout) if done.stdout.strip() else None
        except ValueError:
            answer = None
        if done.returncode != 0:
            if isinstance(answer, dict) and "code" in answer:
                raise PluginError(description, verb, int(answer.get("code", 0)), str(answer.get("msg", "")),
                                  str(answer.get("details", "")))
            raise PluginError(description, verb, 999, f"exit status {done.returncode}: {done.stdout[:200]!r}")
        if verb == "ADD" and not isinstance(answer, dict):
            raise PluginError(description, verb, 999, f"ADD printed no result: {done.stdout[:200]!r}")
        return answer if isinstance(answer, dict) else None

    # --- the three list operations --------------------------------------------------------------------------------
    def add(self, conflist: ConfList, rt: Runtime) -> dict[str, Any]:
        validate(conflist, rt)
        result: dict[str, Any] | None = None
        for plugin in conflist.plugins:
            result = self._exec("ADD", conflist, plugin, result, rt)
        assert result is not None
        self._cache_add(conflist, rt, result)
        return result

    def check(self, conflist: ConfList, rt: Runtime) -> None:
        if _version(conflist.cni_version) < (0, 4, 0):
            raise UserError(f"network {conflist.name!r} is at cniVersion {conflist.cni_version}, which has no CHECK")
        if conflist.disable_check:
            return
        entry = self.cached(conflist.name, rt)
        for plugin in conflist.plugins:
            self._exec("CHECK", conflist, plugin, entry.get("result") if entry else None, rt)

    def delete(self, conflist: ConfList, rt: Runtime) -> None:
        prev = None
        if _version(conflist.cni_version) >= (0, 4, 0):
            entry = self.cached(conflist.name, rt)
            prev = entry.get("result") if entry else None
        for plugin in reversed(conflist.plugins):
            self._exec("DEL", conflist, plugin, prev, rt)
        try:
            self.cache_file(conflist.name, rt).unlink()
        except FileNotFoundError:
            pass

    def supported_versions(self, plugin_type: str) -> tuple[str, ...] | None:
        """The spec versions the plugin's VERSION lists (libcni's GetVersionInfo); None when it cannot be read."""
        if plugin_type not in self._versions:
            path = self.find(plugin_type)
            env = dict(os.environ, CNI_COMMAND="VERSION", CNI_PATH=":".join(self.cni_path))
            done = subprocess.run([path], input=b'{"cniVersion":"1.1.0"}', env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, check=False)
            try:
                answer = json.loads(done.stdout) if done.returncode == 0 else None
            except ValueError:
                answer = None
            versions = answer.get("supportedVersions") if isinstance(answer, dict) else None
            self._versions[plugin_type] = (tuple(v for v in versions if isinstance(v, str))
                                           if isinstance(versions, list) else None)
        return self._versions[plugin_type]

    def gc(self, conflist: ConfList, valid: list[dict[str, str]]) -> tuple[list[str], bool]:
        """GC of every plugin with `valid` ({"containerID", "ifname"}) as the attachments to keep: one line per
        plugin ("TYPE: GC done", why it got none, or its error) and whether all went well (all are tried)."""
        if conflist.disable_gc:
            return ["disableGC is set: no GC"], True
        version = conflist.cni_version if _version(conflist.cni_version) >= (1, 1, 0) else "1.1.0"
        lines: list[str] = []
        ok = True
        for plugin in conflist.plugins:
            kind = plugin["type"]
            try:
                supported = self.supported_versions(kind)
                if supported is not None and version not in supported:
                    lines.append(f"{kind}: no GC (its VERSION lists no {version})")
                    continue
                conf = dict(plugin, name=conflist.name, cniVersion=version)
                conf["cni.dev/valid-attachments"] = valid
                conf["cni.dev/attachments"] = valid
                self._exec_raw("GC", plugin, conflist.name, json.dumps(conf, sort_keys=True).encode(),
                               Runtime("", "", ""))
                lines.append(f"{kind}: GC done")
            except UserError as e:
                lines.append(f"{kind}: {e}")
                ok = False
        return lines, ok

    def add_or_undo(self, conflist: ConfList, rt: Runtime) -> dict[str, Any]:
        """ADD; if any plugin fails, the chain's DEL (as a runtime does), then the ADD's error."""
        try:
            return self.add(conflist, rt)
        except PluginError:
            try:
                self.delete(conflist, rt)
            except UserError:
                pass
            raise

    def runtime_from_cache(self, network: str, rt: Runtime) -> Runtime:
        """The CNI args and capability args the ADD was given (libcni's GetNetworkListCachedConfig), for DEL."""
        entry = self.cached(network, rt)
        if entry is None:
            return rt
        return Runtime(rt.container_id, rt.netns, rt.ifname, entry.get("cniArgs") or rt.args,
                       entry.get("capabilityArgs") or {})
