"""containerd (Debian's 1.6, CRI plugin) confined to a throwaway node: a node network namespace and a private mount
namespace held open by a "holder" process.

Inside that mount namespace (entered with nsenter, not `ip netns exec`, which would drop the cgroup mounts runc
needs):
  /opt/cni/bin    <- the plugin directory under test (read-only bind), so the README's bin_dir is used as written
  /etc/cni/net.d  <- a private directory holding the one conflist (the README's conf_dir)
  /var/lib/cni    <- a private directory: libcni's result cache and host-local's default dataDir
  /sys            <- the node's sysfs, with the machine's cgroup tree carried over for runc
  /run            <- a private tmpfs: shim sockets (/run/containerd/s), runc state, anything else under /run
containerd's root, state, sockets and the pods' netns files (netns_mounts_under_state_dir) live in a private work
directory. Teardown kills, by pid, containerd, its shims, the holder (everything in that mount namespace) and the
pod processes (everything in the test's cgroup parent), removes the cgroups, the work directory and any mount point
it had to create on the machine.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
import tomllib
import types
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..runtime import BUSYBOX, cgroups, pod_rules, remove_cgroups
from ..state import allocations
from .cri import CRI
from .image import PAUSE_IMAGE, build_pause_image

CRI_PLUGIN = "io.containerd.grpc.v1.cri"
NODE_ADDRESS = "192.0.2.10"  # the node's own address (on its uplink in the node netns), for hostPort traffic
UPLINK = "uplink0"

HOLDER = r"""
set -eu
work=$1 cni_bin=$2
mount --bind "$cni_bin" /opt/cni/bin
mount -o remount,bind,ro /opt/cni/bin
mount --bind "$work/net.d" /etc/cni/net.d
mount --bind "$work/var-lib-cni" /var/lib/cni
mkdir -p "$work/mnt/cgroup"
mount --rbind /sys/fs/cgroup "$work/mnt/cgroup"  # keep the cgroup tree (runc needs it) ...
mount -t sysfs sysfs /sys                         # ... while /sys shows the node's network devices
mount --move "$work/mnt/cgroup" /sys/fs/cgroup
mount -t tmpfs -o mode=755 tmpfs /run
echo "ready $$"
exec sleep infinity
"""


def confinement(work: Path) -> dict[str, Any]:
    """Settings that exist only to confine containerd in the test; everything else comes from the README's snippet
    (conf-examples/containerd-config.toml)."""
    return {
        # Private root, state and sockets.
        "root": f"{work}/root", "state": f"{work}/state",
        "grpc": {"address": f"{work}/containerd.sock"},
        "ttrpc": {"address": f"{work}/containerd.sock.ttrpc"},
        # Snapshotters that would probe the machine (modprobe, zfs/btrfs tools) and are not used.
        "disabled_plugins": ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                             "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"],
        "plugins": {
            CRI_PLUGIN: {
                # No registry is reachable: the pause image is built and imported by the test.
                "sandbox_image": PAUSE_IMAGE,
                # This machine refuses a negative oom_score_adj (the sandbox spec asks for -998).
                "restrict_oom_score_adj": True,
                # The pods' netns files go under the private state dir, not the machine's /run/netns.
                "netns_mounts_under_state_dir": True,
                # Never load an AppArmor profile into the machine's kernel.
                "disable_apparmor": True,
            },
            "io.containerd.internal.v1.opt": {"path": f"{work}/opt"},
        },
    }


def merge(base: dict[str, Any], extra: dict[str, Any], path: str = "") -> dict[str, Any]:
    """base + extra, refusing to let extra change any value base sets (the snippet is used as written)."""
    out = dict(base)
    for key, value in extra.items():
        if key in out and isinstance(out[key], dict) and isinstance(value, dict):
            out[key] = merge(out[key], value, f"{path}{key}.")
        elif key in out and out[key] != value:
            raise AssertionError(f"test setting {path}{key} = {value!r} would override the README's {out[key]!r}")
        else:
            out[key] = value
    return out


def toml_dumps(doc: dict[str, Any]) -> str:
    """A small TOML writer for containerd's config (strings, ints, bools, lists of strings, nested tables)."""
    def key(k: str) -> str:
        return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k)

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int):
            return str(v)
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        raise TypeError(f"no TOML for {v!r}")

    lines: list[str] = []

    def table(path: list[str], d: dict[str, Any]) -> None:
        scalars = [(k, v) for k, v in d.items() if not isinstance(v, dict)]
        if path and scalars:
            lines.extend(["", "[" + ".".join(key(p) for p in path) + "]"])
        lines.extend(f"{key(k)} = {value(v)}" for k, v in scalars)
        for k, v in d.items():
            if isinstance(v, dict):
                table(path + [k], v)

    table([], doc)
    text = "\n".join(lines).lstrip("\n") + "\n"
    assert tomllib.loads(text) == doc, "toml_dumps does not round-trip"
    return text


class Pod:
    def __init__(self, name: str, sandbox_id: str, ip: str, pid: int) -> None:
        self.name, self.id, self.ip, self.pid = name, sandbox_id, ip, pid

    def run(self, *argv: str, check: bool = False, timeout: float = 30) -> subprocess.CompletedProcess[bytes]:
        """argv in the pod's network namespace (the machine's binaries)."""
        return subprocess.run(["nsenter", "-t", str(self.pid), "-n", "--", *argv], check=check, capture_output=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    def __repr__(self) -> str:
        return f"Pod({self.name} {self.ip} pid {self.pid})"


class ContainerdNode:
    def __init__(self, node: Any, *, cni_bin: Path, snippet: str, conflist: dict[str, Any],
                 api: types.SimpleNamespace) -> None:
        self.node, self.cni_bin, self.api = node, cni_bin, api
        self.work = Path(f"/tmp/pycni-ctd-{uuid.uuid4().hex[:8]}")  # short: socket paths have a 108-byte limit
        self.run_id = uuid.uuid4().hex[:12]
        self.cgroup_parent = f"/pycni-e2e-{self.run_id}"  # the pods' cgroups, removed at teardown
        self.labels = {"pycni-e2e": self.run_id}
        self.config = merge(tomllib.loads(snippet), confinement(self.work))
        cni = self.config["plugins"][CRI_PLUGIN]["cni"]
        self.bin_dir, self.conf_dir = Path(cni["bin_dir"]), Path(cni["conf_dir"])
        self.conflist = conflist
        self.socket = Path(self.config["grpc"]["address"])
        self.var_lib_cni = self.work / "var-lib-cni"
        self.holder: subprocess.Popen[bytes] | None = None
        self.holder_pid = 0
        self.containerd: subprocess.Popen[bytes] | None = None
        self.cri: CRI | None = None
        self.servers: list[subprocess.Popen[bytes]] = []
        self.created_dirs: list[Path] = []
        self.timings: list[tuple[str, float]] = []
        self._t = time.monotonic()

    def mark(self, step: str) -> None:
        now = time.monotonic()
        self.timings.append((step, now - self._t))
        self._t = now

    # --- start ---------------------------------------------------------------------------------------------------
    def start(self) -> None:
        for sub in ("net.d", "var-lib-cni", "www"):
            (self.work / sub).mkdir(parents=True)
        (self.work / "net.d" / "10-pycni.conflist").write_text(json.dumps(self.conflist, indent=2))
        (self.work / "config.toml").write_text(toml_dumps(self.config))
        # The node's uplink: its own address, as a real node has (hostPorts are reached on it). A veth pair with
        # both ends in the node: the dummy driver may be missing (no modules on this machine).
        self.node.run("ip", "link", "add", UPLINK, "type", "veth", "peer", "name", f"{UPLINK}p")
        self.node.run("ip", "addr", "add", f"{NODE_ADDRESS}/24", "dev", UPLINK)
        self.node.run("ip", "link", "set", f"{UPLINK}p", "up")
        self.node.run("ip", "link", "set", UPLINK, "up")
        for mount_point in (self.bin_dir, self.conf_dir, Path("/var/lib/cni")):
            self._mount_point(mount_point)
        self.holder = subprocess.Popen(
            ["nsenter", f"--net={self.node.path}", "--", "unshare", "--mount", "--propagation", "slave",
             "sh", "-c", HOLDER, "holder", str(self.work), str(self.cni_bin)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        assert self.holder.stdout is not None
        line = self.holder.stdout.readline().decode().split()
        if line[:1] != ["ready"]:
            self.holder.wait(timeout=10)
            err = self.holder.stderr.read().decode() if self.holder.stderr else ""
            raise AssertionError(f"cannot set up containerd's mount namespace: {err.strip()}")
        self.holder_pid = int(line[1])
        self.mark("node + mount namespace")
        self.start_containerd()
        self.import_pause_image()

    def _mount_point(self, path: Path) -> None:
        """Mount points must exist on the machine; create missing ones (empty, removed again at teardown)."""
        missing = []
        while not path.exists():
            missing.append(path)
            path = path.parent
        for directory in reversed(missing):
            directory.mkdir()
            self.created_dirs.append(directory)

    def start_containerd(self) -> None:
        log = open(self.work / "containerd.log", "ab")
        try:
            # nsenter without a pid namespace execs: the Popen pid is containerd's.
            self.containerd = subprocess.Popen(
                ["nsenter", "-t", str(self.holder_pid), "-m", "-n", "--",
                 "containerd", "--config", str(self.work / "config.toml")],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        finally:
            log.close()
        import grpc

        self.cri = CRI(self.api, self.socket)
        deadline = time.monotonic() + 30
        while True:
            if self.containerd.poll() is not None:
                raise AssertionError(f"containerd exited {self.containerd.returncode}:\n{self.log_tail()}")
            try:
                if self.socket.exists():
                    self.version = self.cri.version(timeout=2)
                    break
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"containerd's CRI did not answer within 30 s:\n{self.log_tail()}")
            time.sleep(0.1)
        self.mark("containerd up")

    def stop_containerd(self) -> None:
        """SIGTERM, as a service manager stops it: the shims and the pods keep running."""
        assert self.containerd is not None and self.cri is not None
        self.cri.close()
        self.containerd.send_signal(signal.SIGTERM)
        self.containerd.wait(timeout=30)
        self.containerd = None
        self.mark("containerd stopped")

    def import_pause_image(self) -> None:
        tar = build_pause_image(BUSYBOX, self.work / "pause.tar")
        done = subprocess.run(["ctr", "--address", str(self.socket), "-n", "k8s.io", "images", "import", str(tar)],
                              capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, f"ctr images import: {done.stderr.decode().strip()}"
        self.mark("pause image imported")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join((self.work / "containerd.log").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no containerd log)"

    # --- pods ----------------------------------------------------------------------------------------------------
    def run_pod(self, name: str, port_mappings: Iterable[tuple[int, int]] = ()) -> Pod:
        import grpc

        assert self.cri is not None
        try:
            sandbox_id = self.cri.run_pod(name, uid=uuid.uuid4().hex, namespace="pycni-e2e",
                                          cgroup_parent=self.cgroup_parent, labels=self.labels,
                                          port_mappings=port_mappings)
        except grpc.RpcError as e:
            raise AssertionError(f"RunPodSandbox {name}: {e.code()}: {e.details()}") from None
        status, info = self.cri.status(sandbox_id)
        assert status.state == self.api.pb2.SANDBOX_READY, f"{name} not ready: {status}"
        assert status.network.ip, f"{name} is Ready without an IP: {status}"
        self.mark(f"RunPodSandbox {name}")
        return Pod(name, sandbox_id, status.network.ip, int(info["pid"]))

    def stop_pod(self, pod: Pod) -> None:
        assert self.cri is not None
        self.cri.stop(pod.id)
        self.mark(f"StopPodSandbox {pod.name}")

    def delete_pod(self, pod: Pod) -> None:
        assert self.cri is not None
        self.cri.remove(pod.id)
        self.mark(f"RemovePodSandbox {pod.name}")

    def remove_pod(self, pod: Pod) -> None:
        """Stop, then Remove, as kubelet does."""
        self.stop_pod(pod)
        self.delete_pod(pod)

    def pod_status(self, pod: Pod) -> Any:
        assert self.cri is not None
        return self.cri.status(pod.id)[0]

    def listed_pods(self) -> list[str]:
        """Ids of the sandboxes containerd lists with this run's label."""
        assert self.cri is not None
        return [item.id for item in self.cri.list(self.labels)]

    def serve(self, pod: Pod, port: int = 80) -> None:
        """busybox httpd in the pod's network namespace, answering "hello from <pod>"."""
        www = self.work / "www" / pod.name
        www.mkdir()
        (www / "index.html").write_text(f"hello from {pod.name}\n")
        self.servers.append(subprocess.Popen(
            ["nsenter", "-t", str(pod.pid), "-n", "--", str(BUSYBOX), "httpd", "-f", "-p", str(port), "-h", str(www)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + 10
        while pod.run("sh", "-c", f"{BUSYBOX} netstat -ltn | grep -q ':{port} '").returncode != 0:
            assert time.monotonic() < deadline, f"httpd in {pod.name} is not listening"
            time.sleep(0.05)

    def fetch(self, where: Pod | None, url: str) -> str:
        """GET url from a pod's netns, or from the node's (where=None), with busybox wget."""
        argv = ["timeout", "10", str(BUSYBOX), "wget", "-q", "-O", "-", url]
        done = self.node.run(*argv, check=False, timeout=30) if where is None else where.run(*argv)
        return done.stdout.decode().strip() if done.returncode == 0 else f"FAILED: {done.stderr.decode().strip()}"

    def ping(self, where: Pod | None, address: str) -> bool:
        argv = ["ping", "-c", "1", "-W", "2", address]
        for _ in range(3):
            done = self.node.run(*argv, check=False) if where is None else where.run(*argv)
            if done.returncode == 0:
                return True
            time.sleep(0.2)
        return False

    def stop_servers(self) -> None:
        for proc in self.servers:
            proc.kill()
            proc.wait(timeout=10)
        self.servers.clear()

    # --- what the node has ---------------------------------------------------------------------------------------
    def allocations(self) -> list[str]:
        """host-local's address files under its default dataDir (/var/lib/cni/networks/<network>)."""
        return allocations(self.var_lib_cni / "networks", self.conflist["name"])

    def cache_entries(self) -> list[str]:
        """libcni's cached results and configs (/var/lib/cni/results/<network>-<container id>-<ifname>)."""
        results = self.var_lib_cni / "results"
        return sorted(p.name for p in results.iterdir()) if results.exists() else []

    def netns_files(self) -> list[str]:
        """The pods' netns files under containerd's state dir (netns_mounts_under_state_dir)."""
        netns = Path(self.config["state"]) / CRI_PLUGIN / "netns"
        return sorted(p.name for p in netns.iterdir()) if netns.exists() else []

    def veths(self) -> list[str]:
        """The node's veths other than its uplink pair: the pods' host ends."""
        links = self.node.sh("ip -o link show type veth").splitlines()
        return [ln for ln in links if ln.split(":")[1].strip().split("@")[0] not in (UPLINK, f"{UPLINK}p")]

    def pod_rules(self, ids: Iterable[str]) -> list[str]:
        """Per-pod firewall state in the node (support.runtime.pod_rules), naming a sandbox id or not."""
        return pod_rules(self.node, ids)

    def dnat_rules(self, pod: Pod) -> list[str]:
        return [line for line in self.node.sh("iptables-save -t nat").splitlines()
                if line.startswith("-A CNI-DN-") and f"--to-destination {pod.ip}:" in line]

    # --- teardown ------------------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Also after a failure: kill (by pid) containerd, then everything in the private mount namespace (shims,
        the holder) and in the test's cgroup parent (pod processes); remove the cgroups, the work dir and the
        mount points created on the machine."""
        for proc in self.servers:
            proc.kill()
            proc.wait(timeout=10)
        if self.cri is not None:
            self.cri.close()
        if self.containerd is not None and self.containerd.poll() is None:
            self.containerd.kill()
            self.containerd.wait(timeout=30)
        if self.holder_pid:
            try:
                mnt = os.readlink(f"/proc/{self.holder_pid}/ns/mnt")
            except OSError:
                mnt = ""
            for _ in range(3):  # a shim may still be forking runc: go round until nothing is left
                leftover = {int(pid) for group in self._cgroups()
                            for pid in (group / "cgroup.procs").read_text().split()}
                for pid in (p for p in os.listdir("/proc") if p.isdigit()):
                    try:
                        if mnt and os.readlink(f"/proc/{pid}/ns/mnt") == mnt and int(pid) != self.holder_pid:
                            leftover.add(int(pid))
                    except OSError:
                        pass
                if not leftover:
                    break
                for pid in leftover:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
                time.sleep(0.1)
        if self.holder is not None:
            self.holder.kill()
            self.holder.communicate(timeout=10)
        remove_cgroups(self.cgroup_parent)   # killed processes leave their cgroups asynchronously
        shutil.rmtree(self.work, ignore_errors=True)
        for directory in reversed(self.created_dirs):
            try:
                directory.rmdir()
            except OSError:
                pass

    def _cgroups(self) -> list[Path]:
        return cgroups(self.cgroup_parent)
