"""CNI spec versions: which we speak, how to compare them, and which verbs need which version."""
from __future__ import annotations

from .errors import CniError, Code, VersionError

CURRENT = "1.1.0"
SUPPORTED = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")

# The oldest config version that may carry each verb (libcni's gates, in one table).
MINIMUM_FOR_COMMAND = {"CHECK": "0.4.0", "GC": "1.1.0", "STATUS": "1.1.0"}


def parse(version: str) -> tuple[int, int, int]:
    """'1.0.0' -> (1, 0, 0); anything else is a decoding error naming the value."""
    parts = version.split(".") if isinstance(version, str) else []
    if len(parts) != 3 or not all(p.isdigit() and len(p) <= 6 for p in parts):
        raise CniError(Code.DECODING_FAILURE, f"invalid version {version!r}: expected major.minor.patch")
    major, minor, patch = (int(p) for p in parts)
    return major, minor, patch


def at_least(version: str, minimum: str) -> bool:
    return parse(version) >= parse(minimum)


def check_supported(version: str) -> None:
    if version not in SUPPORTED:
        raise VersionError(
            f"incompatible CNI versions: config is {version!r}, plugin supports {list(SUPPORTED)}"
        )


def check_command_allowed(command: str, version: str) -> None:
    minimum = MINIMUM_FOR_COMMAND.get(command)
    if minimum and not at_least(version, minimum):
        raise VersionError(f"config version {version!r} does not allow {command} (needs >= {minimum})")


def version_info() -> dict[str, object]:
    return {"cniVersion": CURRENT, "supportedVersions": list(SUPPORTED)}
