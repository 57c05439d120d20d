"""The one place that runs other programs; failures become CniErrors that name the program."""
from __future__ import annotations

import subprocess
from .record import record

TYPE_CHECKING = False  # the typing module costs ~4 ms per plugin start; annotations are strings
if TYPE_CHECKING:
    from typing import Callable, Mapping, Sequence
    Runner = Callable[..., Completed]

from .errors import CniError, Code


@record(frozen=True)
class Completed:
    status: int
    stdout: bytes
    stderr: bytes




def run(argv: Sequence[str], *, input: bytes = b"", env: Mapping[str, str] | None = None,
        timeout: float = 60.0, needed_by: str = "") -> Completed:
    """Run argv to completion. A missing program is a clear error naming it (and what needs it)."""
    try:
        proc = subprocess.run(list(argv), input=input, capture_output=True, env=None if env is None else dict(env),
                              timeout=timeout, check=False)
    except FileNotFoundError:
        why = f" (needed by {needed_by})" if needed_by else ""
        raise CniError(Code.INTERNAL, f"program {argv[0]!r} not found{why}") from None
    except subprocess.TimeoutExpired:
        raise CniError(Code.TRY_AGAIN_LATER, f"{argv[0]} did not finish within {timeout:g} s") from None
    except OSError as exc:
        raise CniError(Code.INTERNAL, f"cannot run {argv[0]!r}: {exc}") from None
    return Completed(proc.returncode, proc.stdout, proc.stderr)


def check(argv: Sequence[str], **kwargs: object) -> Completed:
    """run() that turns a non-zero exit into an error carrying the program's stderr."""
    done = run(argv, **kwargs)  # type: ignore[arg-type]
    if done.status != 0:
        text = (done.stderr or done.stdout).decode(errors="replace").strip()
        raise CniError(Code.INTERNAL, f"{' '.join(argv[:3])} failed (exit {done.status}): {text}")
    return done
