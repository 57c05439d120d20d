"""A pause image made here (no registry is reachable): an OCI image layout tar holding a static busybox, with
`sleep infinity` as its process, for `ctr -n k8s.io images import`. containerd's StopPodSandbox kills the sandbox
with SIGKILL, so sleep needs no signal handling of its own."""
from __future__ import annotations

import hashlib
import io
import json
import platform
import tarfile
from pathlib import Path
from typing import Any

# A localhost/ name: CRI never tries to pull it (it is present), and it cannot be mistaken for a registry image.
PAUSE_IMAGE = "localhost/pycni-e2e-pause:1"
GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x",
          "riscv64": "riscv64"}
OCI = "application/vnd.oci.image"


def _blob(files: dict[str, bytes], data: bytes, media_type: str) -> dict[str, Any]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    files["blobs/sha256/" + digest.split(":", 1)[1]] = data
    return {"mediaType": media_type, "digest": digest, "size": len(data)}


def _tar(entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            info.mtime, info.uname, info.gname = 0, "root", "root"
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def _layer(busybox: Path) -> bytes:
    """rootfs: /bin/busybox, /bin/sleep -> busybox, and the empty directories runc mounts over."""
    entries: list[tuple[tarfile.TarInfo, bytes | None]] = []
    for name in ("bin", "dev", "etc", "proc", "sys", "tmp"):
        info = tarfile.TarInfo(name)
        info.type, info.mode = tarfile.DIRTYPE, 0o1777 if name == "tmp" else 0o755
        entries.append((info, None))
    data = busybox.read_bytes()
    info = tarfile.TarInfo("bin/busybox")
    info.size, info.mode = len(data), 0o755
    entries.append((info, data))
    info = tarfile.TarInfo("bin/sleep")
    info.type, info.linkname = tarfile.SYMTYPE, "busybox"
    entries.append((info, None))
    return _tar(entries)


def build_pause_image(busybox: Path, dest: Path, name: str = PAUSE_IMAGE) -> Path:
    """Write an OCI image layout tar for `name` (this machine's platform) to dest and return dest."""
    arch = GOARCH.get(platform.machine(), platform.machine())
    files: dict[str, bytes] = {}
    layer = _layer(busybox)
    config = {
        "architecture": arch, "os": "linux",
        "config": {"Entrypoint": ["/bin/sleep"], "Cmd": ["infinity"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]},
    }
    manifest = {
        "schemaVersion": 2, "mediaType": f"{OCI}.manifest.v1+json",
        "config": _blob(files, json.dumps(config).encode(), f"{OCI}.config.v1+json"),
        "layers": [_blob(files, layer, f"{OCI}.layer.v1.tar")],
    }
    desc = _blob(files, json.dumps(manifest).encode(), f"{OCI}.manifest.v1+json")
    # ctr names the imported image after io.containerd.image.name (the full reference).
    desc["annotations"] = {"io.containerd.image.name": name,
                           "org.opencontainers.image.ref.name": name.rsplit(":", 1)[1]}
    desc["platform"] = {"architecture": arch, "os": "linux"}
    files["index.json"] = json.dumps({"schemaVersion": 2, "mediaType": f"{OCI}.index.v1+json",
                                      "manifests": [desc]}).encode()
    files["oci-layout"] = json.dumps({"imageLayoutVersion": "1.0.0"}).encode()
    entries: list[tuple[tarfile.TarInfo, bytes | None]] = []
    for directory in ("blobs", "blobs/sha256"):
        info = tarfile.TarInfo(directory)
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        entries.append((info, None))
    for path, data in sorted(files.items()):
        info = tarfile.TarInfo(path)
        info.size, info.mode = len(data), 0o644
        entries.append((info, data))
    dest.write_bytes(_tar(entries))
    return dest
