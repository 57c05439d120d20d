"""The plugin's own state: the delegate config of each container, saved on ADD and replayed on DEL/CHECK
(flannel keeps the same, in /var/lib/cni/flannel/<containerID>), so a DEL works after subnet.env changed or
went away. Whole files only (temp file + rename), mode 0600."""
from __future__ import annotations

import os

from common import jsonio
from common.errors import CniError, Code

TYPE_CHECKING = False  # the typing module costs ~4 ms per plugin start; annotations are strings
if TYPE_CHECKING:
    from typing import Any


def save(data_dir: str, container_id: str, config: dict[str, Any]) -> None:
    path = os.path.join(data_dir, container_id)
    temp = f"{path}.tmp-{os.getpid()}"
    try:
        os.makedirs(data_dir, mode=0o700, exist_ok=True)
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(jsonio.dumps(config))
        os.rename(temp, path)
    except OSError as exc:
        _remove(temp)
        raise CniError(Code.IO_FAILURE, f"cannot save delegate config in {data_dir}: {exc.strerror}") from None


def load(data_dir: str, container_id: str) -> dict[str, Any] | None:
    """The saved config, or None when there is none (or it is unreadable: DEL then rebuilds it)."""
    try:
        fd = os.open(os.path.join(data_dir, container_id), os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as f:
            data = jsonio.loads(f.read(1 << 20))
    except (OSError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def remove(data_dir: str, container_id: str) -> None:
    _remove(os.path.join(data_dir, container_id))


def saved_ids(data_dir: str) -> list[str]:
    try:
        return [name for name in os.listdir(data_dir) if ".tmp-" not in name]
    except OSError:
        return []


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
