"""The arguments every verb shares: ``ffpt VERB [CONFIG.yaml] [dotted.key=value ...] [--flags]``.

Precedence: flags > overrides > file > defaults (:func:`ffpt.config.load_config`).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Mapping, TypeVar

from pydantic import BaseModel

from ffpt.config import ConfigError, load_config

C = TypeVar("C", bound=BaseModel)


def add_config_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    """Positional YAML config and dotted overrides; ``--config FILE`` stays as a deprecated alias."""
    parser.add_argument("config", nargs="?", help=f"YAML config ({what}); optional when flags suffice")
    parser.add_argument("overrides", nargs="*", help="dotted.key=value overrides, e.g. steps=2000")
    parser.add_argument("--config", dest="config_flag", help=argparse.SUPPRESS)


def resolve_config(cls: type[C], args: argparse.Namespace, flags: Mapping[str, Any]) -> C:
    """The verb's config from ``args.config``, ``args.overrides`` and the flag values ``flags``
    (dotted key -> value, ``None`` when the flag was not given)."""
    path, overrides = args.config, list(args.overrides)
    if path is not None and "=" in path:  # no YAML file, the first word is an override
        path, overrides = None, [path, *overrides]
    if getattr(args, "config_flag", None) is not None:
        print(f"ffpt {args.verb}: warning: --config is deprecated; give the YAML file first: "
              f"ffpt {args.verb} {args.config_flag} ...", file=sys.stderr)
        if path is not None:
            raise ConfigError(f"two config files given: {path} and --config {args.config_flag}")
        path = args.config_flag
    return load_config(cls, path, overrides, flags)
