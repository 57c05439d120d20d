from __future__ import annotations

import pytest

from common.record import FrozenInstanceError, field, record, replace


@record(frozen=True)
class Point:
    x: int
    y: int = 0
    tags: list[str] = field(default_factory=list)
    secret: str = field(default="", repr=False)


@record(frozen=True, kw_only=True)
class Options:
    a: int
    b: str = "b"


def test_construction_defaults_and_factories():
    p = Point(1)
    assert (p.x, p.y, p.tags, p.secret) == (1, 0, [], "")
    assert Point(1, tags=["a"]).tags == ["a"] and Point(1).tags is not Point(1).tags
    assert Point(x=3, y=4).y == 4


def test_equality_hash_repr():
    assert Point(1, 2) == Point(1, 2) and Point(1, 2) != Point(2, 1)
    assert hash(Point(1, 2, ())) == hash(Point(1, 2, ()))
    assert Point(1, 2) != (1, 2)
    assert repr(Point(1, 2, secret="s")) == "Point(x=1, y=2, tags=[])"


def test_frozen_and_replace():
    p = Point(1)
    with pytest.raises(FrozenInstanceError):
        p.x = 5
    q = replace(p, y=9)
    assert (q.x, q.y) == (1, 9) and p.y == 0


@pytest.mark.parametrize("call", [lambda: Point(), lambda: Point(1, 2, [], "", 5), lambda: Point(1, x=2),
                                  lambda: Point(1, z=2), lambda: Options(1)])
def test_bad_arguments(call):
    with pytest.raises(TypeError):
        call()


def test_kw_only():
    assert Options(a=1).b == "b"


def test_options_it_does_not_implement_are_refused_not_ignored():
    with pytest.raises(TypeError, match="always frozen"):
        record(frozen=False)
    with pytest.raises(TypeError):
        record(slots=True)  # type: ignore[call-overload]
