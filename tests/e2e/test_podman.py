"""podman (Debian 12: podman 4.3, CNI backend) runs two busybox containers on a bridge + host-local + portmap network
served by the plugin directory under test (dist_bin; PYCNI_E2E_BIN=/usr/lib/cni runs it against the Go plugins):
pod-to-pod traffic, a published port (-p 8080:80) from the node and from the pods, and after stop/rm no address
and no per-container rule is left.

Isolation: podman runs inside a throwaway "node" network namespace (the bridge is created where podman runs) and in
a private mount namespace held open by a "holder" process. In that mount namespace /sys is remounted for the node
(with the cgroup tree carried over for runc), and /run, /dev/shm and /var/lib/cni are private tmpfs: podman's
container netns files (/run/netns), runc state (/run/runc), podman's shm lock (/dev/shm/libpod_lock) and libcni's
result cache (/var/lib/cni) never reach the machine. Config, storage and host-local's dataDir live in tmp_path.
"""
from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import string
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import SHIPPED_PLUGINS, Netns, allocations, have, veths
from support.runtime import BUSYBOX, cgroups, is_static, pod_rules, remove_cgroups

pytestmark = pytest.mark.e2e

TEMPLATES = Path(__file__).resolve().parent / "podman"
NETWORK = "pycni-podman"
SUBNET = ipaddress.ip_network("10.89.7.0/24")
GATEWAY = "10.89.7.1"
HOST_PORT, POD_PORT = 8080, 80
PAGE = "hello from pycni podman e2e"
RUNROOT = "/run/containers/storage"  # inside the private /run tmpfs (podman limits it to 50 characters)

# Runs as the holder: a new mount namespace (entered into the node netns by nsenter). Prints its pid, then sleeps.
HOLDER = r"""
set -eu
work=$1
mkdir -p "$work/cgroup"
mount --rbind /sys/fs/cgroup "$work/cgroup"     # keep the cgroup tree (runc needs it) ...
mount -t sysfs sysfs /sys                        # ... while /sys shows the node's network devices
mount --move "$work/cgroup" /sys/fs/cgroup
mount -t tmpfs -o mode=755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=755 tmpfs /var/lib/cni
echo "ready $$"
exec sleep infinity
"""


def _render(name: str, dest: Path, **values: str) -> None:
    dest.write_text(string.Template((TEMPLATES / name).read_text()).substitute(values))


class PodmanNode:
    """podman confined to a node netns + private mount namespace, with all its state under `work`."""

    def __init__(self, node: Netns, cni_bin: Path, work: Path, *, conflist: bool = True) -> None:
        self.node, self.cni_bin, self.work = node, cni_bin, work
        self.timings: list[tuple[str, float]] = []
        self._t = time.monotonic()
        self.holder: subprocess.Popen[bytes] | None = None
        self.holder_pid = 0
        self.created_var_lib_cni = False
        # runc with cgroupfs needs cgroups; podman leaves their parent behind, so give it one that teardown removes.
        self.cgroup_parent = f"/pycni-e2e-{uuid.uuid4().hex[:12]}"
        for sub in ("net.d", "ipam", "storage", "tmp", "volumes", "xdg", "home", "rootfs/bin", "rootfs/www"):
            (work / sub).mkdir(parents=True, exist_ok=True)
        _render("containers.conf", work / "containers.conf", work=str(work), cni_bin=str(cni_bin))
        _render("storage.conf", work / "storage.conf", work=str(work), runroot=RUNROOT)
        _render("registries.conf", work / "registries.conf")
        if conflist:   # else the test has podman write its own (`podman network create`)
            _render(f"{NETWORK}.conflist", work / "net.d" / f"{NETWORK}.conflist", work=str(work))
        self.rootfs = work / "rootfs"
        shutil.copy2(BUSYBOX, self.rootfs / "bin" / "busybox")
        for applet in ("sh", "httpd", "wget", "ping", "sleep", "ip"):
            (self.rootfs / "bin" / applet).symlink_to("busybox")
        (self.rootfs / "www" / "index.html").write_text(PAGE + "\n")
        self.env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(work / "home"),
            "CONTAINERS_CONF": str(work / "containers.conf"),
            "CONTAINERS_STORAGE_CONF": str(work / "storage.conf"),
            "CONTAINERS_REGISTRIES_CONF": str(work / "registries.conf"),
            "XDG_RUNTIME_DIR": str(work / "xdg"), "XDG_CONFIG_HOME": str(work / "home" / ".config"),
            "XDG_DATA_HOME": str(work / "home" / ".local" / "share"),
        }

    def mark(self, step: str) -> None:
        now = time.monotonic()
        self.timings.append((step, now - self._t))
        self._t = now

    # --- holder: the private mount namespace inside the node netns ----------------------------------------------
    def start(self) -> None:
        if not os.path.isdir("/var/lib/cni"):  # the tmpfs needs a mount point; removed again at teardown
            os.makedirs("/var/lib/cni")
            self.created_var_lib_cni = True
        self.holder = subprocess.Popen(
            ["nsenter", f"--net={self.node.path}", "--", "unshare", "--mount", "--propagation", "slave",
             "sh", "-c", HOLDER, "holder", str(self.work)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        assert self.holder.stdout is not None
        line = self.holder.stdout.readline().decode().split()
        if line[:1] != ["ready"]:
            self.holder.wait(timeout=10)
            err = self.holder.stderr.read().decode() if self.holder.stderr else ""
            raise AssertionError(f"cannot set up podman's mount namespace: {err.strip()}")
        self.holder_pid = int(line[1])

    def podman(self, *args: str, check: bool = True, timeout: float = 60) -> str:
        argv = ["nsenter", "-t", str(self.holder_pid), "-m", "-n", "--",
                "podman", "--root", str(self.work / "storage"), "--runroot", RUNROOT, *args]
        done = subprocess.run(argv, env=self.env, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if check and done.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} exited {done.returncode}: {done.stderr.decode().strip()}")
        return done.stdout.decode()

    def in_mount_ns(self, *argv: str) -> str:
        return subprocess.run(["nsenter", "-t", str(self.holder_pid), "-m", "--", *argv], check=True,
                              capture_output=True, timeout=30).stdout.decode()

    def stop(self) -> None:
        """Teardown, also after a failure: remove every container; then kill whatever is left in our cgroup parent
        (container processes) and in the private mount namespace (conmon, the holder): that namespace, its tmpfs
        mounts and the container netns mounted there go with them. Then rmdir our cgroups."""
        if self.holder_pid:
            try:
                self.podman("rm", "--force", "--all", "--time", "0", check=False, timeout=120)
            except subprocess.TimeoutExpired:
                pass
            try:
                mnt = os.readlink(f"/proc/{self.holder_pid}/ns/mnt")
            except OSError:
                mnt = ""
            leftover = {pid for group in self._cgroups() for pid in (group / "cgroup.procs").read_text().split()}
            for pid in (p for p in os.listdir("/proc") if p.isdigit()):
                try:
                    if mnt and os.readlink(f"/proc/{pid}/ns/mnt") == mnt:
                        leftover.add(pid)
                except OSError:
                    pass
            for pid in leftover:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except OSError:
                    pass
        if self.holder is not None:
            self.holder.kill()
            self.holder.communicate(timeout=10)
        remove_cgroups(self.cgroup_parent)   # killed processes leave their cgroups asynchronously
        if self.created_var_lib_cni:
            try:
                os.rmdir("/var/lib/cni")
            except OSError:
                pass

    def _cgroups(self) -> list[Path]:
        return cgroups(self.cgroup_parent)

    # --- what the node has ---------------------------------------------------------------------------------------
    def allocations(self) -> list[str]:
        return allocations(self.work / "ipam", NETWORK)

    def pod_rules(self, ids: list[str], ips: list[str] | None = None) -> list[str]:
        """Per-container firewall state in the node (support.runtime.pod_rules)."""
        return pod_rules(self.node, ids, ips or [])

    def fetch(self, url: str) -> str:
        """GET url from the node namespace (busybox wget; its -T segfaults in Debian's static busybox 1.35)."""
        done = self.node.run("timeout", "10", str(BUSYBOX), "wget", "-q", "-O", "-", url, check=False, timeout=30)
        return done.stdout.decode().strip() if done.returncode == 0 else f"FAILED: {done.stderr.decode().strip()}"


def _podman_node(node: Netns, dist_bin: Path, work: Path, *, conflist: bool) -> Iterator[PodmanNode]:
    for tool, package in (("podman", "podman"), ("runc", "runc"), ("nsenter", "util-linux"),
                          ("unshare", "util-linux")):
        if not have(tool):
            pytest.skip(f"{tool} not installed (apt-get install {package}; scripts/install-deps.sh)")
    if not BUSYBOX.exists() or not is_static(BUSYBOX):
        pytest.skip("a static /bin/busybox is needed for the container rootfs (apt-get install busybox-static)")
    pn = PodmanNode(node, dist_bin, work, conflist=conflist)
    try:
        pn.start()
        yield pn
    finally:
        pn.stop()


@pytest.fixture
def podman_node(host_ns: Netns, dist_bin: Path, tmp_path: Path) -> Iterator[PodmanNode]:
    yield from _podman_node(host_ns, dist_bin, tmp_path, conflist=True)


@pytest.fixture
def bare_podman_node(host_ns: Netns, dist_bin: Path, tmp_path: Path) -> Iterator[PodmanNode]:
    """A podman node whose network config dir is empty: the test creates its networks with podman."""
    yield from _podman_node(host_ns, dist_bin, tmp_path, conflist=False)


def test_podman_two_containers_published_port(podman_node: PodmanNode) -> None:
    pn = podman_node
    t0 = time.monotonic()
    pn.mark("setup")
    assert NETWORK in pn.podman("network", "ls", "--format", "{{.Name}}").split()

    # Two containers from the busybox rootfs; the first serves HTTP and publishes 8080 -> 80.
    # (--rootfs is a boolean: the rootfs directory is the first positional argument, so it comes last.)
    common = ["run", "--detach", "--network", NETWORK, "--cgroup-parent", pn.cgroup_parent]
    id1 = pn.podman(*common, "--name", "pod1", "--publish", f"{HOST_PORT}:{POD_PORT}", "--rootfs", str(pn.rootfs),
                    "/bin/httpd", "-f", "-p", str(POD_PORT), "-h", "/www").strip()
    id2 = pn.podman(*common, "--name", "pod2", "--rootfs", str(pn.rootfs),
                    "/bin/httpd", "-f", "-p", str(POD_PORT), "-h", "/www").strip()
    ids = [id1, id2]
    pn.mark("podman run x2")

    fmt = f'{{{{(index .NetworkSettings.Networks "{NETWORK}").IPAddress}}}}'
    ip1, ip2 = (pn.podman("inspect", "--format", fmt, name).strip() for name in ("pod1", "pod2"))
    assert ipaddress.ip_address(ip1) in SUBNET and ipaddress.ip_address(ip2) in SUBNET and ip1 != ip2
    assert pn.allocations() == sorted([ip1, ip2])
    assert "cni-pycni0" in pn.node.sh("ip -o link show type bridge")
    assert pn.pod_rules(ids), "no per-container rules while the containers run: the leftover check would be blind"

    # Pod to pod, by address: ICMP and HTTP. (No wget -T: it segfaults in Debian's static busybox 1.35.)
    assert "1 packets received" in pn.podman("exec", "pod2", "ping", "-c", "1", "-W", "2", ip1)
    assert pn.podman("exec", "pod2", "wget", "-q", "-O", "-", f"http://{ip1}:{POD_PORT}/").strip() == PAGE
    assert pn.podman("exec", "pod1", "wget", "-q", "-O", "-", f"http://{ip2}:{POD_PORT}/").strip() == PAGE
    pn.mark("pod-to-pod")

    # The published port: from the node via the bridge's gateway address and via 127.0.0.1, from the other pod
    # via the gateway, and from the publishing pod itself (hairpin).
    assert pn.fetch(f"http://{GATEWAY}:{HOST_PORT}/") == PAGE
    assert pn.fetch(f"http://127.0.0.1:{HOST_PORT}/") == PAGE
    assert pn.podman("exec", "pod2", "wget", "-q", "-O", "-",
                     f"http://{GATEWAY}:{HOST_PORT}/").strip() == PAGE
    assert pn.podman("exec", "pod1", "wget", "-q", "-O", "-",
                     f"http://{GATEWAY}:{HOST_PORT}/").strip() == PAGE
    pn.mark("published port")

    # Stopping releases the addresses and the per-container rules (podman calls CNI DEL on stop) ...
    pn.podman("stop", "--time", "0", "pod1", "pod2")
    assert pn.allocations() == []
    assert pn.pod_rules(ids) == []
    assert pn.fetch(f"http://127.0.0.1:{HOST_PORT}/").startswith("FAILED")
    pn.mark("podman stop")
    # ... and after rm nothing of the containers is left in the node.
    pn.podman("rm", "pod1", "pod2")
    assert pn.podman("ps", "--all", "--quiet") == ""
    assert pn.allocations() == []
    assert pn.pod_rules(ids) == []
    assert veths(pn.node) == []
    assert pn.in_mount_ns("sh", "-c", "ls -A /run/netns 2>/dev/null || true").strip() == ""
    pn.mark("podman rm")
    print("podman e2e timings: " + ", ".join(f"{step} {secs:.2f}s" for step, secs in pn.timings)
          + f"; test body {time.monotonic() - t0:.2f}s")


def test_podmans_own_conflist_with_only_pycni_plugins(bare_podman_node: PodmanNode) -> None:
    """`podman network create` writes podman's own conflist (bridge, portmap, firewall, tuning); with cni_plugin_dirs
    holding only pycni's executables, on a node whose FORWARD policy is DROP (as on any host with Docker): the
    containers get addresses, reach each other, the published port works from the node and from the other pod
    (DNAT'ed traffic crosses FORWARD: the firewall plugin's accepts let it through), and stop, rm and `podman
    network rm` leave nothing behind."""
    pn = bare_podman_node
    pn.node.sh("iptables -P FORWARD DROP && ip6tables -P FORWARD DROP")
    network, subnet, gateway = "podnet", ipaddress.ip_network("10.89.9.0/24"), "10.89.9.1"

    def held() -> list[str]:
        """host-local's allocations in its default dataDir (/var/lib/cni: private to podman's mount namespace)."""
        listing = pn.in_mount_ns("sh", "-c", f"ls -A /var/lib/cni/networks/{network} 2>/dev/null || true").split()
        return sorted(name for name in listing if name[0].isdigit())
    pn.podman("network", "create", "--subnet", str(subnet), network)
    conflist = json.loads((pn.work / "net.d" / f"{network}.conflist").read_text())
    assert [plugin["type"] for plugin in conflist["plugins"]] == ["bridge", "portmap", "firewall", "tuning"]
    assert {e for e in os.listdir(pn.cni_bin) if not e.startswith(".")} == set(SHIPPED_PLUGINS)   # only ours

    common = ["run", "--detach", "--network", network, "--cgroup-parent", pn.cgroup_parent]
    id1 = pn.podman(*common, "--name", "web", "--publish", f"{HOST_PORT}:{POD_PORT}", "--rootfs", str(pn.rootfs),
                    "/bin/httpd", "-f", "-p", str(POD_PORT), "-h", "/www").strip()
    id2 = pn.podman(*common, "--name", "client", "--rootfs", str(pn.rootfs), "/bin/sleep", "600").strip()
    fmt = f'{{{{(index .NetworkSettings.Networks "{network}").IPAddress}}}}'
    ip1, ip2 = (pn.podman("inspect", "--format", fmt, name).strip() for name in ("web", "client"))
    assert ipaddress.ip_address(ip1) in subnet and ipaddress.ip_address(ip2) in subnet and ip1 != ip2
    assert held() == sorted([ip1, ip2])
    forward = pn.node.sh("iptables -S CNI-FORWARD")
    assert f"-A CNI-FORWARD -s {ip1}/32 -j ACCEPT" in forward and f"-A CNI-FORWARD -s {ip2}/32 -j ACCEPT" in forward

    assert pn.podman("exec", "client", "wget", "-q", "-O", "-", f"http://{ip1}:{POD_PORT}/").strip() == PAGE
    assert pn.fetch(f"http://{gateway}:{HOST_PORT}/") == PAGE
    assert pn.fetch(f"http://127.0.0.1:{HOST_PORT}/") == PAGE
    assert pn.podman("exec", "client", "wget", "-q", "-O", "-", f"http://{gateway}:{HOST_PORT}/").strip() == PAGE

    pn.podman("stop", "--time", "0", "web", "client")
    ids, ips = [id1, id2], [ip1, ip2]
    assert held() == []
    assert pn.pod_rules(ids, ips) == []
    pn.podman("rm", "web", "client")
    pn.podman("network", "rm", network)
    assert not (pn.work / "net.d" / f"{network}.conflist").exists()
    assert pn.pod_rules(ids, ips) == []
    assert veths(pn.node) == [] and held() == []
