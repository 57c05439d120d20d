"""Shared helpers of the reliability tests: run a plugin (built executable or source) inside a throwaway netns,
read back everything a plugin could leave behind (veths, allocation files, iptables/nftables state)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NETWORK = "relnet"
SUBNET = "10.77.0.0/24"


def bridge_conf(data_dir: Path, *, name: str = NETWORK, version: str = "1.0.0", ip_masq: bool = True,
                subnet: str = SUBNET, **extra: Any) -> dict[str, Any]:
    conf: dict[str, Any] = {
        "cniVersion": version, "name": name, "type": "bridge", "bridge": "relbr0", "isGateway": True,
        "ipMasq": ip_masq, "ipam": {"type": "host-local", "dataDir": str(data_dir), "ranges": [[{"subnet": subnet}]]}}
    conf.update(extra)
    return conf


def portmap_conf(mappings: list[dict[str, Any]], *, name: str = NETWORK, ip: str = "10.77.0.5/24",
                 version: str = "1.0.0", **extra: Any) -> dict[str, Any]:
    conf: dict[str, Any] = {
        "cniVersion": version, "name": name, "type": "portmap", "runtimeConfig": {"portMappings": mappings},
        "prevResult": {"cniVersion": version, "interfaces": [{"name": "eth0", "sandbox": "/run/netns/x"}],
                       "ips": [{"address": ip, "interface": 0}]}}
    conf.update(extra)
    return conf


def host_local_conf(data_dir: Path, *, name: str = NETWORK, subnet: str = SUBNET, version: str = "1.0.0",
                    **ipam: Any) -> dict[str, Any]:
    return {"cniVersion": version, "name": name, "type": "host-local",
            "ipam": {"type": "host-local", "dataDir": str(data_dir), "ranges": [[{"subnet": subnet}]], **ipam}}


def plugin_env(command: str, *, cid: str = "c1", netns: str = "", ifname: str = "eth0", args: str = "",
               cni_path: str = "", path: str = SYSTEM_PATH, **extra: str) -> dict[str, str]:
    return {"PATH": path, "CNI_COMMAND": command, "CNI_CONTAINERID": cid, "CNI_NETNS": netns, "CNI_IFNAME": ifname,
            "CNI_ARGS": args, "CNI_PATH": cni_path or "/nonexistent", **extra}


def argv_for(plugin: str, dist_bin: Path | None, netns_path: str | None) -> list[str]:
    """The plugin's argv: the built executable (dist_bin) or the source entry point, entered into netns_path."""
    if dist_bin is not None:
        argv = [str(dist_bin / plugin)]
    else:
        argv = [sys.executable, "-I", str(REPO / "cni" / plugin / "main.py")]
    return (["nsenter", f"--net={netns_path}", "--"] + argv) if netns_path else argv


def popen(plugin: str, conf: dict[str, Any] | bytes, env: dict[str, str], *, dist_bin: Path | None,
          netns_path: str | None) -> subprocess.Popen[bytes]:
    """Start a plugin; nsenter execs it, so the pid is the plugin's own (SIGKILL hits the plugin)."""
    data = conf if isinstance(conf, bytes) else json.dumps(conf).encode()
    proc = subprocess.Popen(argv_for(plugin, dist_bin, netns_path), env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None
    try:
        proc.stdin.write(data)
        proc.stdin.close()
    except BrokenPipeError:
        pass
    return proc


def run(plugin: str, conf: dict[str, Any] | bytes, env: dict[str, str], *, dist_bin: Path | None,
        netns_path: str | None, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    data = conf if isinstance(conf, bytes) else json.dumps(conf).encode()
    return subprocess.run(argv_for(plugin, dist_bin, netns_path), env=env, input=data, capture_output=True,
                          timeout=timeout, check=False)


def ok(done: subprocess.CompletedProcess[bytes]) -> Any:
    assert done.returncode == 0, (done.stdout.decode(), done.stderr.decode())
    assert b"Traceback" not in done.stderr, done.stderr.decode()
    return json.loads(done.stdout) if done.stdout.strip() else None


def spec_error(done: subprocess.CompletedProcess[bytes] | Any, *codes: int) -> dict[str, Any]:
    """The spec error JSON of a failed run (a CompletedProcess or a skel.Outcome); never a traceback."""
    if isinstance(done, subprocess.CompletedProcess):
        status, out, err = done.returncode, done.stdout.decode(), done.stderr.decode()
    else:
        status, out, err = done.status, done.stdout, done.stderr
    assert "Traceback" not in err and "Traceback" not in out, err
    assert status == 1, (status, out, err)
    error = json.loads(out)
    assert isinstance(error, dict) and type(error.get("code")) is int, out
    assert isinstance(error.get("msg"), str) and error["msg"], out
    assert error["code"] != 999 or "internal error:" not in error["msg"], f"a bug escaped as 999: {out}"
    if codes:
        assert error["code"] in codes, out
    return error


# --- state readers -------------------------------------------------------------------------------------------

def sh(netns_path: str, script: str) -> str:
    return subprocess.run(["nsenter", f"--net={netns_path}", "--", "sh", "-c", script], capture_output=True,
                          check=False, timeout=60).stdout.decode()


def firewall_state(netns_path: str) -> str:
    """iptables (both families, all tables) and the nft ruleset of a netns, without counters and handles."""
    text = sh(netns_path, "iptables-save; ip6tables-save; echo ---; nft list ruleset")
    lines = []
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        if line.startswith(":"):
            line = line.split(" [")[0]
        line = re.sub(r"counter packets \d+ bytes \d+", "counter", line)
        lines.append(line)
    return "\n".join(lines)


def veths(netns_path: str) -> list[str]:
    return [link["ifname"] for link in json.loads(sh(netns_path, "ip -j link show type veth") or "[]")]


def links(netns_path: str) -> list[str]:
    return [link["ifname"] for link in json.loads(sh(netns_path, "ip -j link show") or "[]")]


def allocations(data_dir: Path, network: str = NETWORK) -> list[str]:
    """Allocation files (and anything unexpected) in the network directory."""
    net = data_dir / network
    if not net.exists():
        return []
    return sorted(p.name for p in net.iterdir() if p.name != "lock" and not p.name.startswith("last_reserved_ip."))


def owner_of(data_dir: Path, ip: str, network: str = NETWORK) -> str:
    return (data_dir / network / ip).read_text()


def tree(root: Path) -> dict[str, str]:
    """Every path under root -> type (for "nothing written outside dataDir")."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            out[str(p.relative_to(root))] = "l" if p.is_symlink() else "d" if p.is_dir() else "f"
    return out


def tool_dir(root: Path, *, drop: tuple[str, ...] = (), fakes: dict[str, str] | None = None) -> str:
    """A PATH of one directory: symlinks to every program of the system PATH except `drop` (and except the
    names in `fakes`, which become shell scripts with the given body)."""
    root.mkdir(parents=True, exist_ok=True)
    fakes = fakes or {}
    for directory in SYSTEM_PATH.split(":"):
        if not os.path.isdir(directory):
            continue
        for name in os.listdir(directory):
            target = root / name
            if name in drop or name in fakes or target.exists() or target.is_symlink():
                continue
            target.symlink_to(os.path.join(directory, name))
    for name, body in fakes.items():
        (root / name).write_text("#!/bin/sh\n" + body + "\n")
        (root / name).chmod(0o755)
    return str(root)


def container_rules(netns_path: str, cid: str, network: str = NETWORK, state: str | None = None) -> list[str]:
    """Firewall lines that belong to one container: naming its ID (comments) or its per-container chains
    (portmap CNI-DN-/CNI-SN-, bridge ipMasq CNI-<hash>). Shared chains and their jumps are meant to stay."""
    from common.firewall.names import chain_name
    marks = [cid] + [chain_name(network, cid, prefix) for prefix in ("", "DN-", "SN-")]
    text = firewall_state(netns_path) if state is None else state
    return [line for line in text.splitlines() if any(m in line for m in marks)]
