"""JSON in and out through CPython's C accelerator `_json`, without the `json` package.

Speed: `import json` imports re (and with it enum and the regex compiler), ~7 ms on every plugin start.
`_json`'s scanner and string encoder are the very code `json` runs; only the thin Python glue is ours.
"""
from __future__ import annotations

import _json
import sys

TYPE_CHECKING = False  # the typing module costs ~4 ms per plugin start; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Sequence

_WHITESPACE = " \t\n\r"


def _refuse_constant(name: str) -> object:
    raise ValueError(f"invalid JSON literal {name} (NaN and Infinity are not JSON)")


def _last_wins(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """An object with its keys in the order of their LAST occurrence, so that a case-folding lookup
    (config.Node) sees duplicates as Go's encoding/json does: later keys overwrite earlier ones. A null does
    not overwrite a value (into a Go struct field, null is a no-op)."""
    obj: dict[str, object] = {}
    for key, value in pairs:
        if value is None and obj.get(key) is not None:
            continue
        obj.pop(key, None)
        obj[key] = value
    return obj


class _Decoding:
    """The attributes _json.make_scanner reads from a json.JSONDecoder."""
    strict = True
    object_hook = None
    object_pairs_hook = staticmethod(_last_wins)
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_refuse_constant)   # Go refuses NaN/Infinity: code 6, not a float
    memo: dict[str, str] = {}


class _DecodeError(ValueError):
    """Stands in for json.decoder.JSONDecodeError, which _json raises syntax errors through."""

    def __init__(self, msg: str, doc: str, pos: int) -> None:
        super().__init__(f"{msg} at character {pos}")


_scan = _json.make_scanner(_Decoding())  # type: ignore[arg-type]  # duck-typed: any object with these attributes


def loads(data: bytes | str) -> object:
    """Parse one JSON document; ValueError (with the position) when it is not one. Deep nesting raises
    RecursionError, as json.loads does. Invalid UTF-8 becomes U+FFFD, as in Go (inside a string it is kept as
    that character; anywhere else it is a syntax error)."""
    text = data.decode("utf-8", "replace") if isinstance(data, (bytes, bytearray)) else data
    start = len(text) - len(text.lstrip(_WHITESPACE))
    # _json looks json.decoder up in sys.modules (it never imports it) to raise a syntax error; without it, a
    # frozen plugin gets SystemError. The real module costs `re` and `enum`, so lend a stand-in for this call.
    lent = "json.decoder" not in sys.modules
    if lent:
        stand_in = type(sys)("json.decoder")
        stand_in.JSONDecodeError = _DecodeError  # type: ignore[attr-defined]  # a bare module, filled in here
        sys.modules["json.decoder"] = stand_in
    try:
        value, end = _scan(text, start)
    except StopIteration as stop:
        raise ValueError(f"expecting a JSON value at character {stop.value}") from None
    finally:
        if lent:
            del sys.modules["json.decoder"]
    if text[end:].strip(_WHITESPACE):
        raise ValueError(f"extra data after the JSON value at character {end}")
    return value


def dumps(value: object, indent: int | None = None) -> str:
    """Serialise dicts, lists/tuples, strings, numbers, booleans and None (all a CNI result holds)."""
    out: list[str] = []
    _write(value, out, indent, 0)
    return "".join(out)


def _write(value: object, out: list[str], indent: int | None, level: int) -> None:
    if isinstance(value, str):
        out.append(_json.encode_basestring_ascii(value))
    elif value is None or isinstance(value, bool):
        out.append("null" if value is None else "true" if value else "false")
    elif isinstance(value, (int, float)):
        out.append(_number(value))
    elif isinstance(value, dict):
        items = [(_key(k), v) for k, v in value.items()]
        _container("{", "}", items, out, indent, level)
    elif isinstance(value, (list, tuple)):
        _container("[", "]", [(None, v) for v in value], out, indent, level)
    else:
        raise TypeError(f"cannot serialise {type(value).__name__} as JSON")


def _container(open_: str, close: str, items: Sequence[tuple[str | None, object]], out: list[str],
               indent: int | None, level: int) -> None:
    if not items:
        out.append(open_ + close)
        return
    inner = "" if indent is None else "\n" + " " * (indent * (level + 1))
    out.append(open_)
    for i, (key, item) in enumerate(items):
        out.append(("," if i else "") + (inner or (" " if i else "")))
        if key is not None:
            out.append(_json.encode_basestring_ascii(key) + ": ")
        _write(item, out, indent, level + 1)
    out.append(("" if indent is None else "\n" + " " * (indent * level)) + close)


def _key(key: object) -> str:
    if isinstance(key, str):
        return key
    raise TypeError(f"JSON object keys must be strings, not {type(key).__name__}")


def _number(value: int | float) -> str:
    if isinstance(value, int):
        return int.__repr__(value)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{value!r} is not valid JSON")
    return float.__repr__(value)
