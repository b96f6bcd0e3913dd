"""Spec files: a dataset spec in YAML, mapped key for key onto the dataclasses of :mod:`.spec`.

The file's keys are the fields of :class:`~mlflywheel.datasets.spec.DatasetSpec` (``columns`` a
list of :class:`~mlflywheel.datasets.spec.Column` fields, ``extra_expectations`` a list of
:class:`~mlflywheel.datasets.spec.Expectation` fields, ``drift:`` and ``performance:`` the fields
of the two policies). This layer checks the file's *shape* (unknown keys, missing keys, value
types), derived from the dataclasses' own type hints so that it follows them when they grow; the
dataclasses check the invariants. Every error names the file and the field, e.g.
``sensors.yaml: columns[2].categories: column 'weekday': categories of a int column must be
whole numbers; '1' is a str``.

The same mapping turns a spec into a plain dict (:func:`spec_to_dict`), which a snapshot's
manifest embeds so that training and promotion use exactly the spec the snapshot was built with.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import types
import typing
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import yaml

from mlflywheel.datasets.spec import DatasetSpec, SpecError

# Keys a spec file may leave out although the dataclass field has no default (positional fields).
FILE_DEFAULTS: dict[type, dict[str, Any]] = {DatasetSpec: {"description": "", "id_column": None}}
_JSON_SCALARS = (str, int, float, bool, type(None))


class SpecFileError(SpecError):
    """A spec file (or embedded spec) that cannot be read or breaks a rule; names the source and field."""

    def __init__(self, source: str, message: str, *, field: str | None = None) -> None:
        where = f"{source}: {field}" if field else source
        super().__init__(f"{where}: {message}", field=field)
        self.source = source


class _ShapeError(Exception):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


# --- reading ---------------------------------------------------------------------------------


class _UniqueKeyLoader(yaml.SafeLoader):
    """Safe YAML, except that a key given twice in one mapping is an error (not last-one-wins)."""


def _construct_unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice in one mapping", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def parse_spec_text(text: str, *, source: str) -> DatasetSpec:
    """The spec in YAML ``text``; ``source`` (a file name or URI) names it in errors."""
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass: safe
    except yaml.YAMLError as exc:
        raise SpecFileError(source, f"not valid YAML: {' '.join(str(exc).split())}") from None
    return spec_from_dict(data, source=source)


def read_spec_location(location: str, *, s3_endpoint_url: str = "") -> str:
    """The text of the spec file at ``location``: a local path, a ``file://`` or an ``s3://`` URI
    (read with the lake's S3 client and ``s3_endpoint_url``)."""
    parsed = urlparse(location)
    try:
        if parsed.scheme == "s3":
            from mlflywheel.lake import LakeError, open_lake

            folder, _, name = location.rstrip("/").rpartition("/")
            if not name or folder.endswith(":/"):
                raise SpecFileError(location, "an s3:// spec location needs a bucket and a key: s3://bucket/key.yaml")
            try:
                return open_lake(folder, s3_endpoint_url=s3_endpoint_url).get_bytes(name).decode("utf-8")
            except LakeError as exc:
                raise SpecFileError(location, f"cannot read the spec file: {exc}") from None
        if parsed.scheme in ("file", ""):
            path = Path(unquote(parsed.path)) if parsed.scheme == "file" else Path(location).expanduser()
            return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecFileError(location, "no such spec file") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise SpecFileError(location, f"cannot read the spec file: {exc}") from None
    raise SpecFileError(location, f"unsupported location scheme {parsed.scheme!r}: use a path, file:// or s3://")


def load_spec_file(location: str | Path, *, s3_endpoint_url: str = "") -> DatasetSpec:
    """The spec in the YAML file at ``location`` (see :func:`read_spec_location`), checked."""
    location = str(location)
    return parse_spec_text(read_spec_location(location, s3_endpoint_url=s3_endpoint_url), source=location)


# --- dict <-> dataclasses --------------------------------------------------------------------


def spec_from_dict(data: Any, *, source: str) -> DatasetSpec:
    """A checked :class:`DatasetSpec` from its plain form (parsed YAML, or a manifest's JSON)."""
    try:
        return _build(DatasetSpec, data, "")
    except _ShapeError as exc:
        raise SpecFileError(source, exc.message, field=exc.path or None) from None


def spec_to_dict(spec: DatasetSpec) -> dict[str, Any]:
    """The spec as plain, JSON-serialisable data (lists for tuples), every field included."""
    return _plain(spec)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _build(cls: type, data: Any, path: str) -> Any:
    """``cls(**data)`` with each value converted per ``cls``'s type hints; errors carry the path."""
    if not isinstance(data, dict):
        raise _ShapeError(path, f"expected a mapping of {cls.__name__} keys, got {_kind(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    defaults = FILE_DEFAULTS.get(cls, {})
    for key in data:
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise _ShapeError(_join(path, str(key)), f"unknown key{hint}; known keys: {', '.join(fields)}")
    values: dict[str, Any] = {}
    for name, f in fields.items():
        if name in data:
            values[name] = _convert(hints[name], data[name], _join(path, name))
        elif name in defaults:
            values[name] = defaults[name]
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise _ShapeError(_join(path, name), f"missing required key {name!r}")
    try:
        return cls(**values)
    except SpecError as exc:
        raise _ShapeError(_join(path, exc.field) if exc.field else path, str(exc)) from None
    except (ValueError, TypeError) as exc:
        raise _ShapeError(path, str(exc)) from None


def _convert(hint: Any, value: Any, path: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            return _convert(options[0], value, path)
        for option in options:  # e.g. str | int: keep the value's own type (the dataclass checks it)
            if _is_instance(option, value):
                return value
        # Only words YAML turned into true/false or null: a number here is a number.
        hint = _quote_hint(value) if str in options and (value is None or isinstance(value, bool)) else ""
        raise _ShapeError(path, f"expected {' or '.join(_name(o) for o in options)}, got {_kind(value)}{hint}")
    if origin is typing.Literal:
        if value not in args:
            raise _ShapeError(path, f"expected one of {', '.join(map(str, args))}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, list):
            raise _ShapeError(path, f"expected a list, got {_kind(value)}")
        return tuple(_convert(args[0], item, f"{path}[{i}]") for i, item in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise _ShapeError(path, f"expected a mapping with text keys, got {_kind(value)}")
        _check_json_like(value, path)
        return dict(value)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, path)
    if hint is Any:
        return value
    if not _is_instance(hint, value):
        raise _ShapeError(path, f"expected {_name(hint)}, got {_kind(value)}{_quote_hint(value) if hint is str else ''}")
    return value


def _is_instance(hint: Any, value: Any) -> bool:
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _check_json_like(value: Any, path: str) -> None:
    """Expectation arguments travel in JSON (snapshot manifests): no dates or other objects."""
    if isinstance(value, dict):
        for key, item in value.items():
            _check_json_like(item, _join(path, str(key)))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_json_like(item, f"{path}[{i}]")
    elif not isinstance(value, _JSON_SCALARS):
        raise _ShapeError(path, f"expected text, a number, true/false, a list or a mapping, got {_kind(value)} "
                                "(quote dates and times in YAML)")


def _quote_hint(value: Any) -> str:
    """Where YAML read a word as something else than the text the user meant."""
    if isinstance(value, bool):
        return " (YAML reads yes, no, on, off, true and false as true/false: quote it to keep it text)"
    if value is None:
        return " (YAML reads an empty value, ~ and null as nothing: quote it to keep it text)"
    if isinstance(value, int | float):
        return " (quote it in YAML to keep it text)"
    return ""


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _name(hint: Any) -> str:
    names = {str: "text", int: "a whole number", float: "a number", bool: "true or false"}
    return names.get(hint, getattr(hint, "__name__", str(hint)))


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"true/false ({value})"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{value!r} ({type(value).__name__})"


def spec_digest(spec: DatasetSpec) -> str:
    """A stable text form of the spec (sorted JSON), for content-derived ids."""
    return json.dumps(spec_to_dict(spec), sort_keys=True, separators=(",", ":"), default=str)

