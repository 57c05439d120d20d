"""The firewall plugin's effects on the host besides the rules: the lock, the node's interfaces, the records.

Everything goes through one `Host`, so tests inject fake programs, a temporary lock file, interface list and
record directory; the firewall backends (common.firewall.backend) it makes run through the same programs.

Records. Per-address rules name no container (the reference's iptables rules are matched exactly, so they must
stay as they are), so ADD keeps one small file per attachment, written before the rules:

    <data_dir>/<network>/<containerID>_<ifname>     the attachment's addresses, one per line

DEL without prevResult removes the recorded addresses' rules; GC removes the rules and records of attachments
that are not valid any more (an address another record still holds keeps its rules). DEL removes the record.
"""
from __future__ import annotations

import os

TYPE_CHECKING = False  # the typing module costs ~4 ms per plugin start; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Iterator

    from common.config import IPAddress

from common import exec as execs
from common import flock
from common.errors import CniError, Code
from common.record import record
from common.scoped import contextmanager, suppress

from .config import Attachment

LOCK_PATH = "/run/pycni/firewall.lock"
LOCK_TIMEOUT = 10.0
DATA_DIR = "/var/lib/cni/pycni-firewall"
NET_DEV = "/proc/self/net/dev"   # the interfaces of the netns the plugin runs in (/sys may be another's)


@record(frozen=True)
class Host:
    programs: execs.Programs = execs.SYSTEM
    lock_path: str = LOCK_PATH
    lock_timeout: float = LOCK_TIMEOUT
    data_dir: str = DATA_DIR
    net_dev: str = NET_DEV


@contextmanager
def locked(host: Host) -> Iterator[None]:
    """Exclusive flock serialising our read-modify-write of the shared chains and the records. Waits at most
    lock_timeout (or PYCNI_LOCK_TIMEOUT seconds), then code 11."""
    try:
        os.makedirs(os.path.dirname(host.lock_path), mode=0o755, exist_ok=True)
        fd = os.open(host.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise CniError(Code.IO_FAILURE, f"cannot open the lock {host.lock_path}: {exc.strerror}") from None
    try:
        timeout = flock.timeout_from_env(os.environ, host.lock_timeout)
        flock.acquire(fd, timeout=timeout, what=f"the firewall lock {host.lock_path}")
        yield
    finally:
        os.close(fd)   # closing releases the lock


def interfaces(host: Host) -> frozenset[str] | None:
    """The names of the node's interfaces, None when they cannot be read (then GC keeps isolation rules)."""
    try:
        with open(host.net_dev, "rb") as f:
            lines = f.read().decode("utf-8", "surrogateescape").splitlines()[2:]
    except OSError:
        return None
    return frozenset(line.split(":", 1)[0].strip() for line in lines if ":" in line)


# --- records ----------------------------------------------------------------------------------------------

def _record_path(host: Host, who: Attachment) -> str:
    return os.path.join(host.data_dir, who.network, f"{who.container_id}_{who.ifname}")


def write_record(host: Host, who: Attachment, ips: list[IPAddress]) -> None:
    """The attachment's addresses, written whole (a temporary file renamed into place)."""
    path = _record_path(host, who)
    temp = f"{path}.tmp{os.getpid()}"
    try:
        for attempt in (1, 2):
            os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
            try:
                with open(temp, "w", encoding="ascii") as f:
                    f.write("".join(f"{ip}\n" for ip in ips))
                break
            except FileNotFoundError:   # the directory was removed with another network's last record
                if attempt == 2:
                    raise
        os.replace(temp, path)
    except OSError as exc:
        with suppress(OSError):
            os.unlink(temp)
        raise CniError(Code.IO_FAILURE, f"cannot write the firewall record {path}: {exc.strerror}") from None


def read_record(host: Host, who: Attachment) -> list[IPAddress]:
    """The recorded addresses ([] without a record, or where a line is not an address)."""
    return _addresses(_record_path(host, who))


def remove_record(host: Host, who: Attachment) -> None:
    path = _record_path(host, who)
    with suppress(FileNotFoundError):
        os.unlink(path)
    _remove_if_empty(os.path.dirname(path))


def _remove_if_empty(directory: str) -> None:
    """A network's directory goes with its last record (a racing write_record makes it again)."""
    with suppress(OSError):
        os.rmdir(directory)


def records(host: Host) -> dict[tuple[str, str], list[IPAddress]]:
    """Every record on the node: (network, "<containerID>_<ifname>") -> its addresses."""
    found: dict[tuple[str, str], list[IPAddress]] = {}
    try:
        networks = os.listdir(host.data_dir)
    except OSError:
        return found
    for network in networks:
        try:
            names = os.listdir(os.path.join(host.data_dir, network))
        except OSError:
            continue
        for name in names:
            if ".tmp" not in name:
                found[network, name] = _addresses(os.path.join(host.data_dir, network, name))
    return found


def remove_named(host: Host, network: str, name: str) -> None:
    with suppress(FileNotFoundError):
        os.unlink(os.path.join(host.data_dir, network, name))
    _remove_if_empty(os.path.join(host.data_dir, network))


def record_name(container_id: str, ifname: str) -> str:
    return f"{container_id}_{ifname}"


def _addresses(path: str) -> list[IPAddress]:
    from common.ip import ip_address
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            lines = f.read().split()
    except OSError:
        return []
    found: list[IPAddress] = []
    for line in lines:
        with suppress(ValueError):
            found.append(ip_address(line))
    return found
