from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common import jsonio

values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=25)


@settings(max_examples=400, deadline=None)
@given(values, st.sampled_from([None, 4]))
def test_dumps_matches_json(value, indent):
    assert jsonio.dumps(value, indent) == json.dumps(value, indent=indent)


@settings(max_examples=400, deadline=None)
@given(values)
def test_loads_matches_json(value):
    text = json.dumps(value)
    assert jsonio.loads(text) == json.loads(text)
    assert jsonio.loads(f" \n{text}\t ".encode()) == value


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30))
def test_loads_rejects_what_json_rejects(text):
    def refuse(name: str) -> None:
        raise ValueError(name)
    try:   # json with Go's rules: no NaN/Infinity, duplicates as jsonio keeps them
        expected = json.loads(text, parse_constant=refuse, object_pairs_hook=jsonio._last_wins)
    except (ValueError, RecursionError):
        with pytest.raises((ValueError, RecursionError)):
            jsonio.loads(text)
    else:
        assert jsonio.loads(text) == expected


@pytest.mark.parametrize("text", ["", "   ", "{", '{"a": 1} x', "[1,]", b"\xff\xfe"])
def test_invalid_documents(text):
    with pytest.raises(ValueError):
        jsonio.loads(text)


def test_deep_nesting_is_a_recursion_error():
    with pytest.raises(RecursionError):
        jsonio.loads("[" * 100000)


def test_unserialisable_values():
    with pytest.raises(TypeError):
        jsonio.dumps({1: 2})
    with pytest.raises(ValueError):
        jsonio.dumps(float("nan"))


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", '{"mtu": NaN}', '[1, Infinity]',
                                  '{"a": {"b": [-Infinity]}}'])
def test_nan_and_infinity_are_refused_as_go_refuses_them(text):
    with pytest.raises(ValueError, match="not JSON"):
        jsonio.loads(text)


def test_duplicate_keys_last_one_wins_in_last_occurrence_order():
    data = jsonio.loads('{"a": 1, "B": 2, "a": 3}')
    assert data == {"B": 2, "a": 3}
    assert list(data) == ["B", "a"]   # a case-folding reader must see "a" as the later key


def test_null_does_not_overwrite_a_value():
    """Go decodes null into a struct field as a no-op: the earlier value stays."""
    assert jsonio.loads('{"a": 1, "a": null}') == {"a": 1}
    assert jsonio.loads('{"a": null, "a": 1}') == {"a": 1}
    assert jsonio.loads('{"a": null}') == {"a": None}


def test_invalid_utf8_inside_a_string_becomes_the_replacement_character_as_in_go():
    assert jsonio.loads(b'{"x": "a\xffb"}') == {"x": "a\ufffdb"}
    with pytest.raises(ValueError):
        jsonio.loads(b"\xff{}")
