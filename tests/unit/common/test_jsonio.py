from __future__ import annotations

import json

import pytest
from hypothesis import given, settings, strategies as st

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
    try:
        expected = json.loads(text)
    except (ValueError, RecursionError):
        with pytest.raises((ValueError, RecursionError)):
            jsonio.loads(text)
    else:
        assert jsonio.loads(text) == expected or expected != expected


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
