"""The arguments every verb shares: ``ffpt VERB [CONFIG.yaml] [dotted.key=value ...] [--flags]``.

Precedence: flags > overrides > file > defaults (:func:`ffpt.config.load_config`). Path-typed keys
come back absolute (:func:`ffpt.fileio.absolute_paths`): resolved once here, at the edge, before any
task leaves the process or any path is recorded in a run folder. Teacher options
have one syntax in every verb: ``--teacher-option KEY=VALUE`` (repeatable, VALUE read as YAML),
config key ``teacher_options``.
"""

from __future__ import annotations

import argparse
import copy
import sys
from typing import Any, Mapping, TypeVar

from pydantic import BaseModel

from ffpt.config import ConfigError, apply_overrides, load_config, parse_config, parse_option_items, read_yaml
from ffpt.fileio import absolute_paths

C = TypeVar("C", bound=BaseModel)


def add_config_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    """Positional YAML config and dotted overrides; ``--config FILE`` stays as a deprecated alias."""
    parser.add_argument("config", nargs="?", help=f"YAML config ({what}); optional when flags suffice")
    parser.add_argument("overrides", nargs="*", help="dotted.key=value overrides, e.g. steps=2000")
    parser.add_argument("--config", dest="config_flag", help=argparse.SUPPRESS)


def add_teacher_option_argument(parser: argparse.ArgumentParser) -> None:
    """``--teacher-option KEY=VALUE`` (repeatable): sets ``teacher_options.KEY``."""
    parser.add_argument("--teacher-option", action="append", default=[], metavar="KEY=VALUE",
                        help="teacher option, repeatable; VALUE is read as YAML (3 -> int, false -> bool); "
                        "config key teacher_options")


def add_execution_arguments(parser: argparse.ArgumentParser) -> None:
    """``--workers N`` and ``--scheduler ADDRESS`` (config keys ``workers``, ``scheduler``): where
    independent tasks run (:func:`ffpt.execution.executor`). Both default to ``None`` (not given)."""
    parser.add_argument("--workers", type=int, metavar="N",
                        help="worker processes of the embedded local Dask cluster (default 1: in this process)")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="run on a running Dask scheduler: tcp://HOST:PORT or a scheduler JSON file "
                        "(then --workers does not apply)")


def warn_deprecated(args: argparse.Namespace, old: str, new: str) -> None:
    """One warning line on stderr for a form that keeps working for one release."""
    print(f"ffpt {args.verb}: warning: {old} is deprecated; use {new}", file=sys.stderr)


def teacher_option_flags(items: list[str], key: str = "teacher_options") -> dict[str, Any]:
    """``["xc=pbe"]`` -> ``{"teacher_options.xc": "pbe"}``: flags merged key by key into the section."""
    return {f"{key}.{name}": value for name, value in parse_option_items(items).items()}


def _merge(base: dict, update: Mapping) -> dict:
    """``base`` with ``update`` laid over it, sections merged key by key (in place; returned)."""
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def resolve_config(
    cls: type[C], args: argparse.Namespace, flags: Mapping[str, Any], defaults: Mapping | None = None
) -> C:
    """The verb's config from ``args.config``, ``args.overrides`` and the flag values ``flags``
    (dotted key -> value, ``None`` when the flag was not given), its paths absolute; ``defaults``
    (a nested mapping) lie under the file."""
    path, overrides = args.config, list(args.overrides)
    if path is not None and "=" in path:  # no YAML file, the first word is an override
        path, overrides = None, [path, *overrides]
    if getattr(args, "config_flag", None) is not None:
        warn_deprecated(args, "--config FILE", f"ffpt {args.verb} {args.config_flag} ...")
        if path is not None:
            raise ConfigError(f"two config files given: {path} and --config {args.config_flag}")
        path = args.config_flag
    if defaults is None:
        return absolute_paths(load_config(cls, path, overrides, flags))
    values = _merge(copy.deepcopy(dict(defaults)), read_yaml(path) if path is not None else {})
    apply_overrides(values, overrides)
    apply_overrides(values, flags)
    return absolute_paths(parse_config(cls, values, str(path) if path is not None else "command line"))
