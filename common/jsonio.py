"""JSON in and out through CPython's C accelerator `_json`, without the `json` package.

Speed: `import json` imports re (and with it enum and the regex compiler), ~7 ms on every plugin start.
`_json`'s scanner and string encoder are the very code `json` runs; only the thin Python glue is ours.
"""
from __future__ import annotations

import _json

_WHITESPACE = " \t\n\r"


class _Decoding:
    """The attributes _json.make_scanner reads from a json.JSONDecoder."""
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}.__getitem__
    memo: dict[str, str] = {}


_scan = _json.make_scanner(_Decoding())


def loads(data: bytes | str) -> object:
    """Parse one JSON document; ValueError (with the position) when it is not one. Deep nesting raises
    RecursionError, as json.loads does."""
    text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _scan(text, start)
    except StopIteration as stop:
        raise ValueError(f"expecting a JSON value at character {stop.value}") from None
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


def _container(open_: str, close: str, items: list[tuple[str | None, object]], out: list[str],
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
