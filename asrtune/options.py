"""Options declared once, as dataclass fields, and turned into CLI flags, YAML keys and docs.

The Hugging Face examples' pattern: each option group is a dataclass whose fields carry the type,
the default, the allowed choices and the help text (``option(...)``); the argument parser, the
YAML reader and the documentation table are generated from it, so an option cannot be
documented in one place and forgotten in another.

>>> from dataclasses import dataclass
>>> @dataclass
... class Demo:
...     batch_size: int = option(16, help="utterances per batch")
...     engine: str = option("hf", help="decoder", choices=("hf", "ct2"))
...     tags: list[str] = option(list, help="labels")
>>> import argparse
>>> parser = argparse.ArgumentParser()
>>> add_options(parser, Demo)
>>> given = given_options(Demo, parser.parse_args(["--batch-size", "8"]))
>>> given
{'batch_size': '8'}
>>> update_options(Demo(), given, "command line")
Demo(batch_size=8, engine='hf', tags=[])
>>> update_options(Demo(), {"engine": "onnx"}, "cfg.yaml")
Traceback (most recent call last):
asrtune.errors.ConfigError: cfg.yaml: option 'engine' must be one of hf, ct2; got 'onnx'
>>> print(markdown_table(Demo).splitlines()[2])
| `--batch-size` | `batch_size` | 16 | utterances per batch |
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import types
import typing
from typing import Any

from asrtune.errors import ConfigError

_MISSING = dataclasses.MISSING


def option(
    default: Any = _MISSING,
    *,
    help: str,
    choices: tuple[str, ...] | None = None,
    metavar: str | None = None,
    cli: bool = True,
    group: str | None = None,
) -> Any:
    """A dataclass field that is also a command-line option and a YAML key.

    ``default`` may be a value or, for a mutable default, a zero-argument callable such as
    ``list``. ``cli=False`` keeps a field out of the parser (API/YAML only). ``group`` names the
    ``--help`` section it is shown in.
    """
    metadata = {"help": help, "choices": choices, "metavar": metavar, "cli": cli, "group": group}
    if callable(default) and not isinstance(default, (str, bool, int, float)):
        return dataclasses.field(default_factory=default, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def option_like(cls: type, name: str, default: Any = _MISSING, *, group: str | None = None) -> Any:
    """Option ``name`` of the option dataclass ``cls`` declared again: its help, choices and
    metavar, with ``default`` instead of its own when given, in ``group`` of the new class.

    For a command that hands options on to another command's dataclass (``asrtune demo`` trains
    through :class:`~asrtune.training.TrainConfig`): the option keeps one declaration and the
    command its own default. The field's type annotation is the new class's.

    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Train:
    ...     lr: float = option(1e-5, help="peak learning rate", group="optimiser")
    >>> @dataclass
    ... class Demo:
    ...     lr: float = option_like(Train, "lr", 1e-4)
    >>> Demo().lr, dataclasses.fields(Demo)[0].metadata["help"]
    (0.0001, 'peak learning rate')
    """
    source = next((f for f in dataclasses.fields(cls) if f.name == name), None)
    if source is None or not source.metadata.get("help"):
        raise TypeError(f"{cls.__name__} has no option {name!r}")
    if default is _MISSING:
        default = source.default if source.default is not _MISSING else source.default_factory  # type: ignore[misc]
    meta = source.metadata
    return option(default, help=meta["help"], choices=meta["choices"], metavar=meta["metavar"], cli=meta["cli"], group=group)


def flag_name(name: str) -> str:
    """``max_steps`` -> ``--max-steps``."""
    return "--" + name.replace("_", "-")


def default_of(f: dataclasses.Field) -> Any:
    """The field's default value (a fresh one for a ``default_factory``); None when it has none."""
    if f.default is not _MISSING:
        return f.default
    if f.default_factory is not _MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _union_members(hint: Any) -> tuple[list[Any], bool]:
    """(the non-None types, whether None is allowed) of ``X | Y | None``."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        return [a for a in args if a is not type(None)], type(None) in args
    return [hint], False


def _base_type(hint: Any) -> tuple[Any, bool]:
    """(the first non-None type, whether None is allowed): the type the command line parses to."""
    members, optional = _union_members(hint)
    return members[0], optional


def show_default(value: Any) -> str:
    """How ``--help`` and docs/options.md print a default.

    >>> show_default(None), show_default(True), show_default(["a", "b"]), show_default(1e-05)
    ('none', 'on', 'a,b', '1e-05')
    """
    if value is None or value == "":
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value) if value else "none"
    return str(value)


def add_options(parser: argparse.ArgumentParser, cls: type, exclude: tuple[str, ...] = ()) -> None:
    """Add one flag per CLI field of ``cls``, grouped by each field's ``group``.

    An option the user did not type is absent from the parsed namespace (argparse's default is
    ``SUPPRESS``), so only typed options override a YAML file, and ``--help`` shows the field's
    real default rather than argparse's.
    """
    hints = _hints(cls)
    groups: dict[str | None, Any] = {}
    for f in dataclasses.fields(cls):
        meta = f.metadata
        if not meta.get("cli", False) or f.name in exclude:
            continue
        target = groups.get(meta.get("group"))
        if target is None:
            target = parser.add_argument_group(meta["group"]) if meta.get("group") else parser
            groups[meta.get("group")] = target
        kind, _ = _base_type(hints[f.name])
        is_list = typing.get_origin(kind) is list
        help_text = meta["help"] + ("; repeat or comma-separate" if is_list else "")
        help_text = help_text.replace("%", "%%") + f" (default: {show_default(default_of(f))})"
        kwargs: dict[str, Any] = {"default": argparse.SUPPRESS, "help": help_text, "dest": f.name}
        if meta.get("metavar"):
            kwargs["metavar"] = meta["metavar"]
        if kind is bool:
            target.add_argument(flag_name(f.name), action=argparse.BooleanOptionalAction, **kwargs)
            continue
        if is_list:
            target.add_argument(flag_name(f.name), action="append", **kwargs)
            continue
        if meta.get("choices"):
            kwargs["choices"] = list(meta["choices"])
        target.add_argument(flag_name(f.name), type=str, **kwargs)


def given_options(cls: type, args: argparse.Namespace) -> dict[str, Any]:
    """The options of ``cls`` that were typed on the command line (raw values, not yet coerced)."""
    given = {}
    for f in dataclasses.fields(cls):
        value = getattr(args, f.name, None)
        if value is None:
            continue
        if isinstance(value, list):  # action="append": each item may itself be comma-separated
            value = [item.strip() for v in value for item in str(v).split(",") if item.strip()]
        given[f.name] = value
    return given


def update_options(obj: Any, values: dict[str, Any], source: str) -> Any:
    """Set fields of ``obj`` from a mapping (YAML or command line), checking names, types and
    choices; raise :class:`ConfigError` naming ``source`` and the option. Returns ``obj``."""
    fields = {f.name: f for f in dataclasses.fields(obj)}
    hints = _hints(type(obj))
    for key, value in values.items():
        name = str(key).replace("-", "_")
        if name not in fields:
            close = difflib.get_close_matches(name, list(fields), n=1)
            hint = f" (did you mean {close[0].replace('_', '-')!r}?)" if close else ""
            raise ConfigError(f"{source}: unknown option {key!r}{hint}")
        coerced = coerce(name, value, hints[name], source)
        _check_choice(fields[name], coerced, f"{source}: option {name.replace('_', '-')!r}")
        setattr(obj, name, coerced)
    return obj


def check_choices(obj: Any) -> None:
    """Raise :class:`ConfigError` for the first field of ``obj`` whose value is not among its choices.

    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Demo:
    ...     engine: str = option("hf", help="decoder", choices=("hf", "ct2"))
    >>> check_choices(Demo(engine="onnx"))
    Traceback (most recent call last):
    asrtune.errors.ConfigError: --engine must be one of hf, ct2; got 'onnx'
    """
    for f in dataclasses.fields(obj):
        _check_choice(f, getattr(obj, f.name), flag_name(f.name))


def _check_choice(f: dataclasses.Field, value: Any, what: str) -> None:
    choices = f.metadata.get("choices")
    if choices and value is not None and value not in choices:
        raise ConfigError(f"{what} must be one of {', '.join(choices)}; got {value!r}")


def option_groups(cls: type) -> list[str | None]:
    """The ``group`` names of ``cls``'s options, in the order their first field appears."""
    return list(dict.fromkeys(f.metadata.get("group") for f in dataclasses.fields(cls) if f.metadata.get("help")))


def markdown_table(cls: type, group: str | None = None, key_header: str = "YAML key") -> str:
    """A Markdown table of ``cls``'s options (only those of ``group`` when given): flag, key, default, help.

    ``key_header`` names the field-name column (``YAML key`` for a config file's options,
    ``keyword`` where the field names are Python keyword arguments).
    """
    rows = [f"| option | {key_header} | default | meaning |", "|---|---|---|---|"]
    for f in dataclasses.fields(cls):
        if not f.metadata.get("help") or (group is not None and f.metadata.get("group") != group):
            continue
        flag = f"`{flag_name(f.name)}`" if f.metadata.get("cli") else "(API only)"
        choices = f.metadata.get("choices")
        meaning = f.metadata["help"] + (f" ({' / '.join(choices)})" if choices else "")
        meaning = meaning.replace("|", r"\|")  # a bare | would end the cell
        rows.append(f"| {flag} | `{f.name}` | {show_default(default_of(f))} | {meaning} |")
    return "\n".join(rows)


# --- coercion -------------------------------------------------------------------------------------


def coerce(name: str, value: Any, hint: Any, source: str) -> Any:
    """Coerce a YAML/CLI value to the field's type; :class:`ConfigError` naming the option."""
    option_name = name.replace("_", "-")
    members, optional = _union_members(hint)
    if value is None or (optional and isinstance(value, str) and value.strip().lower() in ("none", "null")):
        if optional:
            return None
        raise ConfigError(f"{source}: option {option_name!r} cannot be empty")
    for kind in members:  # ``str | list[str]``: the first type the value fits
        try:
            return _coerce_to(kind, value)
        except (TypeError, ValueError):
            continue
    if isinstance(value, list) and len(value) == 1:  # a list option typed once with a word (``--merge-alphas auto``)
        for kind in members:
            if typing.get_origin(kind) is not list:
                try:
                    return _coerce_to(kind, value[0])
                except (TypeError, ValueError):
                    continue
    expected = " or ".join(_type_name(kind) for kind in members)
    raise ConfigError(f"{source}: option {option_name!r} expects {expected}, got {value!r}")


def _coerce_to(kind: Any, value: Any) -> Any:
    if typing.get_origin(kind) is list:
        (item_type,) = typing.get_args(kind)
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            value = [value]
        return [_scalar(item_type, v) for v in value]
    return _scalar(kind, value)


def _scalar(kind: Any, value: Any) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "on", "false", "no", "0", "off"):
            return value.lower() in ("true", "yes", "1", "on")
        raise ValueError(value)
    if kind is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError(value)
        return int(value)
    if kind is float:
        if isinstance(value, bool):
            raise ValueError(value)
        return float(value)
    if kind is str:
        if isinstance(value, (dict, list)):
            raise ValueError(value)
        return value.strip() if isinstance(value, str) else str(value)
    return value


def _type_name(kind: Any) -> str:
    if typing.get_origin(kind) is list:
        return f"a list of {_type_name(typing.get_args(kind)[0])}"
    return {bool: "true/false", int: "a whole number", float: "a number", str: "a string"}.get(kind, str(kind))
