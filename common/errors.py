"""CNI errors as values.

    CniError(code, msg, details)        any failure a plugin reports; skel prints it as spec error JSON
     ├── ConfigError                    code 7: invalid network configuration (message names key path + value)
     ├── VersionError                   code 1: incompatible CNI version
     └── TryAgainError                  code 11: transient (a lock we could not get in time)

Codes are the spec's (SPEC §5 "Error"); 0-99 are reserved for the spec, >=100 for plugins.
"""
from __future__ import annotations


class Code:
    """The spec's error codes (plain ints: an IntEnum would import enum, ~4 ms per plugin start)."""
    UNKNOWN = 0
    INCOMPATIBLE_VERSION = 1
    UNSUPPORTED_FIELD = 2
    UNKNOWN_CONTAINER = 3
    INVALID_ENVIRONMENT = 4
    IO_FAILURE = 5
    DECODING_FAILURE = 6
    INVALID_CONFIG = 7
    INVALID_NETNS = 8
    TRY_AGAIN_LATER = 11
    NOT_AVAILABLE = 50
    LIMITED_CONNECTIVITY = 51
    INTERNAL = 999


class CniError(Exception):
    """A failure reported to the runtime as `{"cniVersion", "code", "msg", "details"}`."""

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.code = int(code)
        self.msg = msg
        self.details = details

    def to_json(self, cni_version: str) -> dict[str, object]:
        out: dict[str, object] = {"cniVersion": cni_version, "code": self.code, "msg": self.msg}
        if self.details:
            out["details"] = self.details
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code}, {self.msg!r})"


class ConfigError(CniError):
    def __init__(self, msg: str, details: str = "") -> None:
        super().__init__(Code.INVALID_CONFIG, msg, details)


class VersionError(CniError):
    def __init__(self, msg: str, details: str = "") -> None:
        super().__init__(Code.INCOMPATIBLE_VERSION, msg, details)


class TryAgainError(CniError):
    def __init__(self, msg: str, details: str = "") -> None:
        super().__init__(Code.TRY_AGAIN_LATER, msg, details)


class ErrorCollector:
    """Runs best-effort steps (DEL, GC) to the end and raises the failures as one CniError.

        errors = ErrorCollector("DEL")
        with errors.step("removing veth"): ...
        errors.raise_if_any()
    """

    def __init__(self, what: str) -> None:
        self.what = what
        self.failures: list[tuple[str, Exception]] = []

    def step(self, name: str) -> _Step:
        return _Step(self, name)

    def raise_if_any(self) -> None:
        if not self.failures:
            return
        if len(self.failures) == 1:
            name, exc = self.failures[0]
            code = exc.code if isinstance(exc, CniError) else Code.INTERNAL
            raise CniError(code, f"{self.what}: {name}: {_text(exc)}")
        msg = "; ".join(f"{name}: {_text(exc)}" for name, exc in self.failures)
        raise CniError(Code.INTERNAL, f"{self.what} failed in {len(self.failures)} steps: {msg}")


class _Step:
    def __init__(self, collector: ErrorCollector, name: str) -> None:
        self.collector = collector
        self.name = name

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> bool:
        if isinstance(exc, Exception):
            self.collector.failures.append((self.name, exc))
            return True
        return False


def _text(exc: Exception) -> str:
    return exc.msg if isinstance(exc, CniError) else f"{type(exc).__name__}: {exc}"
