"""Frozen value classes, the subset of `dataclasses` pycni uses, without its start-up cost.

Speed: `import dataclasses` pulls in inspect (and with it ast, dis, tokenize), ~9 ms, and every decorated class
then generates its methods with exec(), ~0.5 ms each: paid on every plugin start, i.e. every pod start. `record`
builds the same behaviour from the class annotations with plain closures instead:

    @record(frozen=True)
    class Route:
        dst: IPInterface
        gw: IPAddress | None = None
        tags: tuple[str, ...] = field(default_factory=tuple)

gives keyword/positional construction with defaults, ==, hash(), repr(), immutability and `replace(obj, gw=...)`.
"""
from __future__ import annotations

TYPE_CHECKING = False  # the typing module costs ~4 ms per plugin start; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, Literal, TypeVar, dataclass_transform, overload
    T = TypeVar("T")
else:
    def dataclass_transform(**_: object) -> object:
        """Tells the type checker that @record makes dataclass-like classes; nothing at run time."""
        return lambda decorated: decorated

_MISSING = object()


class Field:
    __slots__ = ("default", "default_factory", "repr")

    def __init__(self, default: object, default_factory: object, repr: bool) -> None:
        self.default, self.default_factory, self.repr = default, default_factory, repr


if TYPE_CHECKING:   # as dataclasses.field: the checker sees the default's type, the class gets a Field
    @overload
    def field(*, default: T, repr: bool = True) -> T: ...
    @overload
    def field(*, default_factory: Callable[[], T], repr: bool = True) -> T: ...
    @overload
    def field(*, repr: bool = True) -> Any: ...


def field(*, default: object = _MISSING, default_factory: object = _MISSING, repr: bool = True) -> Any:
    return Field(default, default_factory, repr)


class FrozenInstanceError(AttributeError):
    pass


if TYPE_CHECKING:   # frozen=False is refused here too: Literal[True]
    @overload
    def record(cls: type[T], /) -> type[T]: ...
    @overload
    def record(cls: None = None, /, *, frozen: Literal[True] = True,
               kw_only: bool = False) -> Callable[[type[T]], type[T]]: ...


@dataclass_transform(frozen_default=True, kw_only_default=False, field_specifiers=(field,))
def record(cls: type[T] | None = None, /, *, frozen: bool = True,
           kw_only: bool = False) -> type[T] | Callable[[type[T]], type[T]]:
    """Class decorator. Records are always frozen: `frozen=False` is refused rather than ignored (and there is no
    `slots`: passing it is a TypeError, as with any unknown keyword)."""
    if not frozen:
        raise TypeError("record classes are always frozen: frozen=False is not supported")

    def wrap(klass: type) -> type:
        return _build(klass, kw_only)
    return wrap if cls is None else wrap(cls)


def _build(cls: type, kw_only: bool) -> type:
    names: list[str] = []
    defaults: dict[str, object] = {}
    factories: dict[str, object] = {}
    hidden: set[str] = set()
    for name, annotation in cls.__dict__.get("__annotations__", {}).items():
        if str(annotation).startswith(("ClassVar", "typing.ClassVar")):
            continue
        names.append(name)
        value = cls.__dict__.get(name, _MISSING)
        if isinstance(value, Field):
            if not value.repr:
                hidden.add(name)
            if value.default_factory is not _MISSING:
                factories[name] = value.default_factory
            elif value.default is not _MISSING:
                defaults[name] = value.default
            delattr(cls, name)
        elif value is not _MISSING:
            defaults[name] = value
    fields = tuple(names)

    def __eq__(self: object, other: object) -> bool:
        if type(self) is not type(other):
            return NotImplemented
        return _values(self, fields) == _values(other, fields)

    def __hash__(self: object) -> int:
        return hash(_values(self, fields))

    def __repr__(self: object) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in fields if name not in hidden)
        return f"{type(self).__name__}({shown})"

    # The methods go onto the class after its creation, which is what this decorator is for (the checker knows
    # the resulting class from dataclass_transform): the ignores below are for these assignments only.
    cls.__init__ = _init(cls.__name__, fields, defaults, factories, kw_only)  # type: ignore[misc]
    cls.__eq__, cls.__hash__, cls.__repr__ = __eq__, __hash__, __repr__  # type: ignore[method-assign,assignment]
    cls.__setattr__ = cls.__delattr__ = _frozen  # type: ignore[method-assign,assignment]
    cls.__record_fields__ = fields  # type: ignore[attr-defined]  # our own marker attribute, read by replace()
    return cls


def _values(obj: object, fields: tuple[str, ...]) -> tuple[object, ...]:
    return tuple(getattr(obj, name) for name in fields)


def _init(class_name: str, fields: tuple[str, ...], defaults: dict[str, object], factories: dict[str, object],
          kw_only: bool) -> object:
    known = set(fields)

    def __init__(self: object, *args: object, **kwargs: object) -> None:
        if len(args) > (0 if kw_only else len(fields)):
            raise TypeError(f"{class_name}() takes {0 if kw_only else len(fields)} positional arguments "
                            f"but {len(args)} were given")
        values = dict(zip(fields, args))
        for name, value in kwargs.items():
            if name not in known or name in values:
                raise TypeError(f"{class_name}() got an unexpected or repeated argument {name!r}")
            values[name] = value
        for name in fields:
            if name in values:
                continue
            if name in defaults:
                values[name] = defaults[name]
            elif name in factories:
                values[name] = factories[name]()  # type: ignore[operator]  # a Field's default_factory
            else:
                raise TypeError(f"{class_name}() missing required argument {name!r}")
        for name in fields:
            object.__setattr__(self, name, values[name])
        post_init = getattr(self, "__post_init__", None)
        if post_init is not None:
            post_init()

    return __init__


def _frozen(self: object, name: str, *args: object) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r} of frozen {type(self).__name__}")


def replace(obj: T, /, **changes: object) -> T:
    """A copy of `obj` with some fields changed (dataclasses.replace)."""
    fields = type(obj).__record_fields__  # type: ignore[attr-defined]  # set by @record on every record class
    values = {name: getattr(obj, name) for name in fields}
    values.update(changes)
    return type(obj)(**values)
