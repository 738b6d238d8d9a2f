"""The base of every Gavel config and wire format, and the one edge that reads a file.

:class:`GavelModel` forbids unknown fields. :func:`load_model` reads a YAML file and
:func:`parse_model` validates loaded data; both turn every failure into a
:class:`ConfigError` that names the file, the field and the bad value in one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError


class GavelModel(BaseModel):
    """Base of every Gavel config and wire format: unknown fields are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


_MISSING = object()


class ConfigError(Exception):
    """A config file is invalid. ``str(err)`` is a one-line message for users."""

    def __init__(self, file: str, field: str, message: str, value: object = _MISSING) -> None:
        self.file = file
        self.field = field
        self.value = value
        self.message = message
        where = f"{file}: {field}" if field else file
        shown = "" if value is _MISSING or value is None else f" = {value!r}"
        super().__init__(f"{where}{shown}: {message}")


def rebase_path(path: str, base_dir: Path) -> str:
    """``path`` made absolute against ``base_dir`` (the folder of the file that names it)."""
    p = Path(path).expanduser()
    return str(p if p.is_absolute() else (base_dir / p).resolve())


def resolve_url(url: str, *, base_dir: Path) -> str:
    """A store URL with a relative SQLite path made absolute against ``base_dir`` (Ray
    workers do not share the CLI's working directory)."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != "sqlite://":
        return prefix + rebase_path(url[len(prefix) :], base_dir)
    return url


def _field_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _value_at(data: Any, loc: tuple[int | str, ...]) -> object:
    cur = data
    for part in loc:
        try:
            cur = cur[part]
        except (KeyError, IndexError, TypeError):
            return _MISSING
    return cur


M = TypeVar("M", bound=BaseModel)


def parse_model(data: object, cls: type[M], *, source: str) -> M:
    """Validate already-loaded YAML/JSON data as ``cls``; errors name source, field and value."""
    if not isinstance(data, dict):
        raise ConfigError(source, "", "the top level must be a mapping")
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        if err["type"] == "extra_forbidden":
            raise ConfigError(source, _field_path(loc), "unknown field") from None
        # Errors raised inside a validator of a nested model have no value of their own.
        value = _value_at(data, loc) if loc else _MISSING
        if err["type"] == "value_error":
            value = _MISSING
        msg = str(err["msg"]).removeprefix("Value error, ")
        raise ConfigError(source, _field_path(loc), msg, value) from None


def read_yaml(path: str | Path) -> Any:
    """The YAML document at ``path``; a :class:`ConfigError` names the file if it cannot."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(p), "", "file not found") from None
    except IsADirectoryError:
        raise ConfigError(str(p), "", "is a folder, not a file") from None
    except OSError as exc:
        raise ConfigError(str(p), "", f"cannot read: {exc.strerror}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(str(p), line, "not valid YAML") from None


def load_model(path: str | Path, cls: type[M]) -> M:
    """Read a YAML file and validate it as ``cls``."""
    return parse_model(read_yaml(path), cls, source=str(path))
