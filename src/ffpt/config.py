"""One configuration system: a strict pydantic base, YAML reading whose errors name file and line,
dotted ``key=value`` overrides and one :class:`ConfigError`.

Every verb resolves its config the same way, with one precedence: flags > overrides > file > defaults
(:func:`load_config`). Unknown keys and wrong types are errors that name the source and the dotted key.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Mapping, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from ffpt.errors import UserError

__all__ = [
    "ConfigError", "Strict", "apply_overrides", "load_config", "parse_config", "parse_option_items",
    "read_yaml", "save_config",
]


class ConfigError(UserError):
    """An invalid configuration; the message names the file (and line) or the dotted key."""


class Strict(BaseModel):
    """Base of every ffpt config: unknown keys are errors, fields may start with ``model_``."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())


C = TypeVar("C", bound=BaseModel)


def _yaml_value(text: str) -> Any:
    """A value written on the command line, read as YAML; "1e-9" (a string in YAML 1.1) becomes a float."""
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"value '{text}': not valid YAML ({_one_line(exc)})") from None
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


def read_yaml(path: str | os.PathLike) -> dict:
    """The mapping in a YAML file; a missing file, a syntax error (with its line) or a non-mapping
    top level is a :class:`ConfigError` that names the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        values = yaml.safe_load(path.read_text())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError(f"{where}: YAML syntax error: {exc.problem or exc.context}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid YAML ({_one_line(exc)})") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values at the top level")
    return values


def apply_overrides(values: dict, overrides: Iterable[str] | Mapping[str, Any]) -> dict:
    """Set dotted keys in the nested mapping ``values`` (in place; returned).

    ``overrides`` is either ``["training.lr=5e-4", ...]`` (values read as YAML) or a mapping of
    dotted keys to values, where ``None`` means "not given" and is skipped.
    """
    if isinstance(overrides, Mapping):
        items = [(key, value) for key, value in overrides.items() if value is not None]
    else:
        items = []
        for item in overrides:
            key, sep, raw = item.partition("=")
            if not sep or not key.strip():
                raise ConfigError(f"override '{item}': expected dotted.key=value")
            items.append((key.strip(), _yaml_value(raw)))
    for key, value in items:
        node = values
        *parents, leaf = key.split(".")
        for depth, part in enumerate(parents):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override '{key}': '{'.'.join(parents[: depth + 1])}' is not a section")
            node = child
        node[leaf] = value
    return values


def parse_option_items(items: Iterable[str], what: str = "--teacher-option") -> dict[str, Any]:
    """``["xc=pbe", "grids_level=3"]`` -> ``{"xc": "pbe", "grids_level": 3}`` (values read as YAML)."""
    options: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{what} '{item}': expected KEY=VALUE")
        options[key.strip()] = _yaml_value(raw)
    return options


def _format(exc: ValidationError, source: str) -> str:
    problems = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "<top level>"
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        problems.append(f"key '{key}': {msg}")
    return f"{source}: " + "; ".join(problems)


def parse_config(cls: type[C], values: Mapping[str, Any], source: str = "config") -> C:
    """Validate ``values`` as ``cls``; errors are one :class:`ConfigError` naming ``source`` and keys."""
    try:
        return cls.model_validate(dict(values))
    except ValidationError as exc:
        raise ConfigError(_format(exc, source)) from None


def load_config(
    cls: type[C],
    path: str | os.PathLike | None = None,
    overrides: Iterable[str] = (),
    flags: Mapping[str, Any] | None = None,
) -> C:
    """The one way a verb gets its config: flags > dotted overrides > YAML file > defaults.

    ``flags`` maps dotted keys to the values of command-line flags (``None``: flag not given).
    """
    values = read_yaml(path) if path is not None else {}
    apply_overrides(values, list(overrides))
    apply_overrides(values, flags or {})
    source = str(path) if path is not None else "command line"
    return parse_config(cls, values, source)


def save_config(config: BaseModel, path: str | os.PathLike) -> Path:
    """Write the resolved config as YAML, atomically."""
    from ffpt.fileio import atomic_write_text

    return atomic_write_text(path, yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
