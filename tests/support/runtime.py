"""What the container-runtime tests (podman, containerd) share: the static busybox their containers are made of,
the cgroups a confined runtime leaves under the test's own parent, and the per-container firewall state a node
must not keep after the containers are gone."""
from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

from .netns import Netns
from .paths import have

BUSYBOX = Path("/bin/busybox")
# Chains shared by every container: they (and the jumps into them) are meant to stay after DEL.
SHARED_CHAINS = {"CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-SETMARK", "CNI-HOSTPORT-MASQ", "CNI-FORWARD", "CNI-ADMIN",
                 "CNI-ISOLATION-STAGE-1", "CNI-ISOLATION-STAGE-2"}


def cgroups(parent: str) -> list[Path]:
    """The cgroup `parent` and everything below it, deepest first, in every hierarchy under /sys/fs/cgroup."""
    groups: list[Path] = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mount_point, fstype = line.split()[4], line.split(" - ")[1].split()[0]
        top = Path(mount_point) / parent.lstrip("/")
        if fstype in ("cgroup", "cgroup2") and mount_point.startswith("/sys/fs/cgroup") and top.is_dir():
            groups += sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)) + [top]
    return groups


def remove_cgroups(parent: str) -> None:
    """Remove `parent` and its children once their killed processes have left them (asynchronously: ~5 s at most)."""
    for _ in range(50):
        for group in cgroups(parent):
            try:
                group.rmdir()
            except OSError:
                pass
        if not cgroups(parent):
            return
        time.sleep(0.1)


def pod_rules(node: Netns, ids: Iterable[str], ips: Iterable[str] = ()) -> list[str]:
    """Per-container firewall state in the node: per-container chains (CNI-DN-*, CNI-<hash>), their rules and the
    jumps into them, any rule naming one of `ids` (iptables and nft), and any rule matching one of the host
    addresses `ips` exactly (the firewall plugin's per-IP accepts in the shared CNI-FORWARD carry no ID)."""
    ids = list(ids) + [f" {ip}/32 " for ip in ips] + [f" {ip}/128 " for ip in ips]
    found = []
    for tool in ("iptables-save", "ip6tables-save"):
        for line in node.sh(tool).splitlines():
            words = line.split()
            if line.startswith(":CNI-") and words[0][1:] not in SHARED_CHAINS:
                found.append(line)
            elif line.startswith("-A "):
                target = words[words.index("-j") + 1] if "-j" in words else ""
                if any(c.startswith("CNI-") and c not in SHARED_CHAINS for c in (words[1], target)) \
                        or any(i in line for i in ids):
                    found.append(line)
    if have("nft"):
        found += [ln.strip() for ln in node.sh("nft list ruleset", check=False).splitlines()
                  if any(i in ln for i in ids)]
    return found


def is_static(path: Path) -> bool:
    """True when path is an ELF file without a PT_INTERP program header: it runs in a rootfs with no loader."""
    try:
        data = path.read_bytes()
    except OSError:
        return False
    if data[:4] != b"\x7fELF":
        return False
    wide, order = data[4] == 2, "little" if data[5] == 1 else "big"
    phoff = int.from_bytes(data[0x20:0x28] if wide else data[0x1C:0x20], order)
    entsize = int.from_bytes(data[0x36:0x38] if wide else data[0x2A:0x2C], order)
    count = int.from_bytes(data[0x38:0x3A] if wide else data[0x2C:0x2E], order)
    return all(int.from_bytes(data[phoff + i * entsize:phoff + i * entsize + 4], order) != 3 for i in range(count))
