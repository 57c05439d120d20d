"""Locks never hang forever: past a bounded wait the plugin answers code 11 (try again later), saying what it
waited for, and leaves nothing behind. Short timeouts via PYCNI_LOCK_TIMEOUT.

The xtables lock: iptables here is iptables-nft (nf_tables backend), which does not take /run/xtables.lock at
all (checked below with strace), so the machine-global lock file is not held in these tests; instead a stand-in
iptables-restore on PATH answers the way iptables-legacy does when `-w 10` runs out.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from support import (
    NETWORK,
    Netns,
    allocations,
    bridge_conf,
    cni_env,
    firewall_state,
    plugin_argv,
    portmap_conf,
    run,
    spec_error,
    tool_dir,
    veths,
)

pytestmark = pytest.mark.e2e

LEGACY_LOCK_TIMEOUT = ('echo "$0 $*" >> "$(dirname "$0")/calls"; cat >/dev/null; '
                       'echo "Another app is currently holding the xtables lock. Stopped waiting after 10s." >&2; '
                       'exit 4')


def _hold(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def test_host_local_and_bridge_give_up_on_a_held_ipam_lock(dist_bin: Path, host_ns: Netns,
                                                            netns_factory: Callable[[str], Netns],
                                                            tmp_path: Path) -> None:
    data = tmp_path / "data"
    pod = netns_factory("pod")
    fd = _hold(data / NETWORK / "lock")
    try:
        env = cni_env("ADD", cid="c1", netns=pod.path, cni_path=dist_bin, PYCNI_LOCK_TIMEOUT="0.3")
        conf = bridge_conf(data, isGateway=True, ipMasq=True)
        for plugin in ("host-local", "bridge"):
            start = time.monotonic()
            error = spec_error(run(plugin_argv(plugin, dist_bin), env, conf, inside=host_ns), 11)
            assert time.monotonic() - start < 5
            assert str(data / NETWORK / "lock") in error["msg"] and "waiting" in error["msg"], error
        assert veths(host_ns) == [] and "eth0" not in pod.sh("ip -o link")
    finally:
        os.close(fd)
    assert allocations(data) == []


def test_portmap_gives_up_on_a_held_portmap_lock(dist_bin: Path, host_ns: Netns,
                                                netns_factory: Callable[[str], Netns]) -> None:
    """/run/pycni is a private tmpfs in a private mount namespace, so the machine's lock file is not touched."""
    pod = netns_factory("pod")
    before = firewall_state(host_ns)
    conf = portmap_conf([{"hostPort": 8080, "containerPort": 80}], backend="iptables")
    script = ("mkdir -p /run/pycni && mount -t tmpfs pycni-test /run/pycni && "
              "(flock -x /run/pycni/portmap.lock sleep 5 </dev/null >/dev/null 2>&1 &) && sleep 0.3 && "
              f"exec nsenter --net={host_ns.path} -- {dist_bin / 'portmap'}")
    env = cni_env("ADD", cid="c1", netns=pod.path, PYCNI_LOCK_TIMEOUT="0.5")
    start = time.monotonic()
    done = run(["unshare", "-m", "--propagation", "private", "sh", "-c", script], env, conf, timeout=30)
    error = spec_error(done, 11)
    assert time.monotonic() - start < 4.5
    assert "/run/pycni/portmap.lock" in error["msg"] and "0.5 s" in error["msg"], error
    assert firewall_state(host_ns) == before


@pytest.mark.parametrize("plugin", ["portmap", "bridge"])
def test_xtables_lock_timeout_is_try_again(dist_bin: Path, host_ns: Netns, netns_factory: Callable[[str], Netns],
                                           tmp_path: Path, plugin: str) -> None:
    tools = tmp_path / "tools"
    path = tool_dir(tools, fakes={"iptables-restore": LEGACY_LOCK_TIMEOUT, "ip6tables-restore": LEGACY_LOCK_TIMEOUT})
    pod = netns_factory("pod")
    before = firewall_state(host_ns)
    if plugin == "portmap":
        conf = portmap_conf([{"hostPort": 8080, "containerPort": 80}], backend="iptables")
    else:
        conf = bridge_conf(tmp_path / "data", isGateway=True, ipMasq=True, ipMasqBackend="iptables")
    env = cni_env("ADD", cid="c1", netns=pod.path, cni_path=dist_bin, path=path)
    error = spec_error(run(plugin_argv(plugin, dist_bin), env, conf, inside=host_ns), 11)
    assert "xtables lock" in error["msg"] and "10 s" in error["msg"], error
    calls = (tools / "calls").read_text().split()
    assert calls[1:4] == ["--noflush", "-w", "10"], calls     # a bounded wait, never a bare --wait
    assert firewall_state(host_ns) == before
    assert veths(host_ns) == [] and allocations(tmp_path / "data") == []


def test_iptables_nft_does_not_use_the_xtables_lock_file(host_ns: Netns) -> None:
    """Why the tests above do not hold /run/xtables.lock: the nf_tables backend never opens it."""
    version = subprocess.run(["iptables", "--version"], capture_output=True, text=True).stdout
    if "nf_tables" not in version or not shutil.which("strace"):
        pytest.skip(f"needs iptables-nft and strace ({version.strip()})")
    done = subprocess.run(["nsenter", f"--net={host_ns.path}", "--", "strace", "-f", "-e", "trace=openat,open,flock",
                           "iptables-restore", "--noflush", "-w", "10"], input=b"*nat\nCOMMIT\n",
                          capture_output=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert b"xtables.lock" not in done.stderr


def test_firewall_gives_up_on_a_held_firewall_lock(dist_bin: Path, host_ns: Netns,
                                                  netns_factory: Callable[[str], Netns]) -> None:
    """As portmap's: /run/pycni is a private tmpfs in a private mount namespace. Nothing is written (the record
    comes after the lock), and a DEL gives up the same way."""
    pod = netns_factory("pod")
    before = firewall_state(host_ns)
    conf = {"cniVersion": "1.0.0", "name": "pfw-lock", "type": "firewall", "backend": "iptables",
            "prevResult": {"cniVersion": "1.0.0", "ips": [{"address": "10.77.0.5/24"}]}}
    script = ("mkdir -p /run/pycni && mount -t tmpfs pycni-test /run/pycni && "
              "(flock -x /run/pycni/firewall.lock sleep 5 </dev/null >/dev/null 2>&1 &) && sleep 0.3 && "
              f"exec nsenter --net={host_ns.path} -- {dist_bin / 'firewall'}")
    for command in ("ADD", "DEL"):
        env = cni_env(command, cid="c1", netns=pod.path, PYCNI_LOCK_TIMEOUT="0.5")
        start = time.monotonic()
        error = spec_error(run(["unshare", "-m", "--propagation", "private", "sh", "-c", script], env, conf,
                               timeout=30), 11)
        assert time.monotonic() - start < 4.5
        assert "/run/pycni/firewall.lock" in error["msg"] and "0.5 s" in error["msg"], error
    assert firewall_state(host_ns) == before
    assert not os.path.exists("/var/lib/cni/pycni-firewall/pfw-lock/c1_eth0")
