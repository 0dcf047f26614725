"""Typed JSON records: frozen dataclasses that turn into JSON objects and back.

A :class:`Record` subclass declares its fields with type hints; :meth:`Record.to_dict` writes
them under their own names and :meth:`Record.from_dict` reads them back, checking each value
against its hint (``int``, ``float``, ``str``, ``bool``, ``Any``, ``X | None``,
``tuple[X, ...]``, ``dict[str, X]`` and nested records). A wrong or missing value is one
:class:`asrtune.errors.AsrtuneError` naming its path in the object (``normalized.wer``).

Why not pydantic or dacite: neither is in the core install (only the ``[serve]`` extra brings
pydantic), and the report needs just these few types; a core dependency for them would cost
every user more than the hundred lines here.

>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class Point(Record):
...     x: float
...     label: str | None = optional()
>>> Point(1.5).to_dict(), Point.from_dict({"x": 2}) == Point(2.0)
({'x': 1.5}, True)
>>> Point.from_dict({"x": "far"})
Traceback (most recent call last):
asrtune.errors.AsrtuneError: x: expected float, got 'far'
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from asrtune.errors import AsrtuneError

_OMIT_NONE = "omit_none"  # field metadata: a None value is left out of the object
_NONE_AS_EMPTY = "none_as_empty"  # field metadata: a None value is written (and read) as {}

R = TypeVar("R", bound="Record")


def optional(*, omit: bool = True, empty: bool = False) -> Any:
    """A field that may be None: left out of the JSON (``omit``), written as ``{}`` (``empty``),
    or written as null (neither)."""
    return dataclasses.field(default=None, metadata={_OMIT_NONE: omit and not empty, _NONE_AS_EMPTY: empty})


def _encode(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, float):
        return value if math.isfinite(value) else None  # JSON has no NaN or infinity
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _encode(v) for k, v in value.items()}
    return value


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)  # resolves the string annotations once per class


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _decode(tp: Any, value: Any, where: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _decode(inner, value, where)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise AsrtuneError(f"{where}: expected a list, got {value!r:.60}")
        return tuple(_decode(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, Mapping):
            raise AsrtuneError(f"{where}: expected an object, got {value!r:.60}")
        return {str(k): _decode(args[1], v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(tp, type) and issubclass(tp, Record):
        return tp.from_dict(value, where)
    ok = {
        float: isinstance(value, int | float) and not isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        bool: isinstance(value, bool),
        str: isinstance(value, str),
    }.get(tp)
    if ok is None:
        raise TypeError(f"{where}: records cannot hold a {tp!r}")
    if not ok:
        raise AsrtuneError(f"{where}: expected {_type_name(tp)}, got {value!r:.60}")
    return float(value) if tp is float else value


class Record:
    """Base of a frozen dataclass that is written as a JSON object (see the module doc)."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON object: every field under its own name (None fields per :func:`optional`)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value is None and f.metadata.get(_OMIT_NONE):
                continue
            out[f.name] = {} if value is None and f.metadata.get(_NONE_AS_EMPTY) else _encode(value)
        return out

    @classmethod
    def from_dict(cls: type[R], data: Any, where: str = "") -> R:
        """The record a JSON object holds; keys it does not declare are ignored. ``where`` is the
        object's path for error messages (empty: the top level)."""
        if not isinstance(data, Mapping):
            raise AsrtuneError(f"{where or cls.__name__}: expected an object, got {data!r:.60}")
        hints = _hints(cls)
        kwargs = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if f.name not in data:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    raise AsrtuneError(f"{where or cls.__name__}: no {f.name!r}")
                continue
            value = data[f.name]
            if f.metadata.get(_NONE_AS_EMPTY) and value == {}:
                value = None
            kwargs[f.name] = _decode(hints[f.name], value, f"{where}.{f.name}" if where else f.name)
        return cls(**kwargs)
