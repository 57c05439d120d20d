"""`pycni run`: CMD in a new network namespace attached to networks (eth0, eth1, ...), `none` (only lo), `host`
(no new namespace) or `container:N` (the namespace of the running `run` named N). While it runs, its state is
<state-dir>/<name>.json; on exit, SIGINT/SIGTERM/SIGHUP or an error everything is detached, the namespace removed and
the file deleted. A SIGKILLed `run` leaves the file: `pycni gc` finishes its teardown."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import netaddr

from . import networks
from .chain import Chain, ConfList, Runtime
from .errors import UserError

NETNS_DIR = Path("/run/netns")
LOOPBACK = ConfList.from_bytes(json.dumps({"cniVersion": "1.0.0", "name": "cni-loopback",
                                           "plugins": [{"type": "loopback"}]}).encode())
_VALID_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$")
_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass(frozen=True)
class RunOptions:
    """ports and macs: (the network they are for, or None for the first --network; the value)."""
    name: str | None
    networks: list[str]
    ports: list[tuple[str | None, dict[str, Any]]]
    ips: list[str]
    macs: list[tuple[str | None, str]]
    command: list[str]


class Interrupted(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum


def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def alive(state: dict[str, Any]) -> bool:
    pid = state.get("pid")
    return isinstance(pid, int) and _start_time(pid) == state.get("pidStart")


class Runs:
    def __init__(self, chain: Chain, conf_dir: Path, state_dir: Path) -> None:
        self.chain, self.conf_dir, self.state_dir = chain, conf_dir, state_dir

    # --- state files ----------------------------------------------------------------------------------------------
    def states(self) -> list[dict[str, Any]]:
        try:
            names = sorted(os.listdir(self.state_dir))
        except FileNotFoundError:
            return []
        out = []
        for name in names:
            if name.endswith(".json"):
                try:
                    out.append(json.loads((self.state_dir / name).read_text()))
                except (OSError, ValueError):
                    continue
        return out

    def _save(self, state: dict[str, Any]) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.state_dir / f"{state['name']}.json"
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        os.replace(tmp, path)

    def _claim(self, state: dict[str, Any]) -> None:
        """The state file, created exclusively: two runs never share a name."""
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.state_dir / f"{state['name']}.json"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            try:
                other = json.loads(path.read_text())
            except (OSError, ValueError):
                other = {}
            if alive(other):
                raise UserError(f"--name {state['name']!r} is taken by a running `pycni run` (pid "
                                f"{other.get('pid')})") from None
            raise UserError(f"--name {state['name']!r} is held by a `pycni run` that did not finish (pid "
                            f"{other.get('pid')}): `pycni gc` cleans it up") from None
        with os.fdopen(fd, "w") as out:
            out.write(json.dumps(state, indent=2) + "\n")

    def find(self, name: str) -> dict[str, Any]:
        for state in self.states():
            if state.get("name") == name:
                return state
        raise UserError(f"no `pycni run` named {name!r} (see `pycni ps`)")

    # --- set-up and teardown --------------------------------------------------------------------------------------
    def _conflist(self, network: str, rt: Runtime) -> ConfList:
        if network == LOOPBACK.name:
            return LOOPBACK
        try:
            return networks.load(self.conf_dir, network)
        except UserError:
            entry = self.chain.cached(network, rt)
            if entry is None:
                raise
            from .facts import decoded_config
            return ConfList.from_bytes(decoded_config(entry) or b"")

    def teardown(self, state: dict[str, Any]) -> list[str]:
        """Detach everything the run attached (last first), remove its namespace and state file; the errors."""
        errors: list[str] = []
        from .facts import cache_entries
        known = {(a["network"], a["ifname"]) for a in state.get("attachments", [])}
        later = [{"network": e["networkName"], "ifname": e["ifName"]} for e in cache_entries(self.chain.cache_dir)
                 if e.get("containerId") == state["containerId"] and (e["networkName"], e["ifName"]) not in known]
        for att in [*later, *reversed(state.get("attachments", []))]:
            rt = Runtime(state["containerId"], state["netns"], att["ifname"])
            try:
                conflist = self._conflist(att["network"], rt)
                self.chain.delete(conflist, self.chain.runtime_from_cache(conflist.name, rt))
            except UserError as e:
                errors.append(f"detach {att['network']} ({att['ifname']}): {e}")
        if state.get("netnsCreated") and os.path.exists(state["netns"]):
            from pyroute2 import netns as pyroute2_netns
            try:
                pyroute2_netns.remove(state["netns"])
            except OSError as e:
                errors.append(f"remove netns {state['netns']}: {e}")
        if not errors:
            (self.state_dir / f"{state['name']}.json").unlink(missing_ok=True)
        return errors

    def _capabilities(self, index: int, conflist: ConfList, opts: RunOptions) -> dict[str, Any]:
        """The capability args of the index-th --network: `-p`/`--mac` qualified with its name (the first
        --network of that name) or unqualified (the first --network), `--ip` in its subnets."""
        caps = conflist.capabilities()
        nets = opts.networks or [conflist.name]
        first = nets.index(conflist.name) == index if conflist.name in nets else index == 0

        def mine(qualifier: str | None) -> bool:
            return (qualifier is None and index == 0) or (qualifier == conflist.name and first)

        args: dict[str, Any] = {}
        mappings = [m for q, m in opts.ports if mine(q)]
        if mappings:
            if "portMappings" not in caps:
                raise UserError(f"-p: network {conflist.name!r} has no plugin with the portMappings capability")
            args["portMappings"] = mappings
        ips = [ip for ip in opts.ips if any(netaddr.IPAddress(ip) in net for net in networks.subnets(conflist))]
        if ips:
            if "ips" not in caps:
                raise UserError(f"--ip {ips[0]}: network {conflist.name!r} has no plugin with the ips capability")
            args["ips"] = ips
        macs = [m for q, m in opts.macs if mine(q)]
        if len(macs) > 1:
            raise UserError(f"--mac: {len(macs)} MACs for network {conflist.name!r} ({', '.join(macs)}): give one")
        if macs:
            if "mac" not in caps:
                raise UserError(f"--mac: network {conflist.name!r} has no plugin with the mac capability")
            args["mac"] = macs[0]
        return args

    def _check(self, opts: RunOptions) -> tuple[str, list[ConfList]]:
        """The mode (new, none, host, container:N) and the networks to attach; every error before any effect."""
        nets = opts.networks or ["none"]
        special = [n for n in nets if n in ("none", "host") or n.startswith("container:")]
        if special and len(nets) > 1:
            raise UserError(f"--network {special[0]} cannot be combined with other --network values")
        mode = special[0] if special else "new"
        if mode != "new" and (opts.ports or opts.ips or opts.macs):
            flag = "-p" if opts.ports else "--ip" if opts.ips else "--mac"
            raise UserError(f"{flag} needs a network to attach; --network {mode} attaches none")
        for flag, qualified in (("-p", [q for q, _ in opts.ports]), ("--mac", [q for q, _ in opts.macs])):
            for qualifier in qualified:
                if qualifier is not None and qualifier not in nets:
                    raise UserError(f"{flag} {qualifier}=...: {qualifier!r} is not one of the --network values "
                                    f"({', '.join(nets)})")
        conflists = [networks.load(self.conf_dir, n) for n in nets] if mode == "new" else []
        for index, conflist in enumerate(conflists):
            self._capabilities(index, conflist, opts)          # every capability error before any effect
        for ip in opts.ips:
            try:
                addr = netaddr.IPAddress(ip)
            except (netaddr.AddrFormatError, ValueError):
                raise UserError(f"invalid --ip {ip!r}: expected an IP address") from None
            if not any(addr in net for c in conflists for net in networks.subnets(c)):
                raise UserError(f"--ip {ip} is in none of the subnets of --network {', '.join(nets)}")
        return mode, conflists

    def run(self, opts: RunOptions) -> int:
        name = opts.name or f"run-{uuid.uuid4().hex[:8]}"
        if not _VALID_NAME.match(name) or len(name) > 64:
            raise UserError(f"invalid --name {name!r}: up to 64 letters, digits, '_', '.', '-', starting with a "
                            "letter or digit")
        if not opts.command:
            raise UserError("no command given: pycni run [OPTIONS] -- CMD [ARGS...]")
        mode, conflists = self._check(opts)
        if mode.startswith("container:"):
            netns = self.find(mode.split(":", 1)[1])["netns"]
            if netns == "host":
                mode = "host"
        else:
            netns = "host" if mode == "host" else str(NETNS_DIR / f"pycni-{name}")
            if netns != "host" and os.path.lexists(netns):
                raise UserError(f"--name {name!r}: the namespace {netns} already exists")
        state: dict[str, Any] = {"name": name, "containerId": "pycni-" + uuid.uuid4().hex, "pid": os.getpid(),
                                 "pidStart": _start_time(os.getpid()), "netns": netns, "network": mode,
                                 "ownNetns": mode in ("new", "none"), "attachments": [], "command": opts.command,
                                 "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        self._claim(state)
        child: list[subprocess.Popen[bytes]] = []

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            if child and child[0].poll() is None:
                child[0].send_signal(signum)
            else:
                raise Interrupted(signum)

        previous = {s: signal.signal(s, on_signal) for s in _SIGNALS}
        try:
            if state["ownNetns"]:
                self._setup(state, conflists, opts)
            return self._exec(state, opts.command, child)
        except Interrupted as e:
            return 128 + e.signum
        finally:
            for s in _SIGNALS:
                signal.signal(s, signal.SIG_IGN)
            errors = self.teardown(state) if state["ownNetns"] else []
            if not state["ownNetns"]:
                (self.state_dir / f"{name}.json").unlink(missing_ok=True)
            for s, handler in previous.items():
                signal.signal(s, handler)
            if errors:
                raise UserError("teardown incomplete (`pycni gc` retries):\n  " + "\n  ".join(errors))

    def _setup(self, state: dict[str, Any], conflists: list[ConfList], opts: RunOptions) -> None:
        from pyroute2 import netns as pyroute2_netns
        NETNS_DIR.mkdir(parents=True, exist_ok=True)
        pyroute2_netns.create(state["netns"])
        state["netnsCreated"] = True
        self._save(state)
        for index, conflist in enumerate([LOOPBACK, *conflists]):
            ifname = "lo" if index == 0 else f"eth{index - 1}"
            caps = self._capabilities(index - 1, conflist, opts) if index else {}
            rt = Runtime(state["containerId"], state["netns"], ifname, capability_args=caps)
            state["attachments"].append({"network": conflist.name, "ifname": ifname})
            self._save(state)
            result = self.chain.add_or_undo(conflist, rt)
            state["attachments"][-1]["addresses"] = [ip.get("address") for ip in result.get("ips") or []]
            if caps.get("portMappings"):
                state["attachments"][-1]["portMappings"] = caps["portMappings"]
            self._save(state)

    def _exec(self, state: dict[str, Any], command: list[str], child: list[subprocess.Popen[bytes]]) -> int:
        fd = None if state["netns"] == "host" else os.open(state["netns"], os.O_RDONLY)

        def enter() -> None:
            if fd is not None:
                from pyroute2 import netns as pyroute2_netns
                pyroute2_netns.setns(fd, flags=0)

        try:
            child.append(subprocess.Popen(command, preexec_fn=enter))
        except FileNotFoundError:
            raise UserError(f"command not found: {command[0]!r}") from None
        except PermissionError:
            raise UserError(f"command not executable: {command[0]!r}") from None
        finally:
            if fd is not None:
                os.close(fd)
        state["childPid"] = child[0].pid
        self._save(state)
        while True:
            try:
                code = child[0].wait()
                break
            except Interrupted:
                continue
        return code if code >= 0 else 128 - code

    def gc(self) -> list[str]:
        """Finish the teardown of every run whose process is gone; what was cleaned (and errors)."""
        done = []
        for state in self.states():
            if alive(state):
                continue
            errors = self.teardown(state)
            done.append(f"run {state['name']}: " + ("cleaned" if not errors else "; ".join(errors)))
        return done
