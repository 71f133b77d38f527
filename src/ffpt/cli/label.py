"""``ffpt label``: label an extxyz dataset with a teacher (parallel, cached, resumable).

Settings come from a YAML file (``--config``) and/or flags; a flag given on the command line
overrides the same key of the YAML file. Example::

    ffpt label --data in.extxyz --teacher pyscf --option xc=pbe --option basis=def2-svp \\
        --workers 2 --out out.extxyz
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

HELP = "label frames with a teacher (PySCF DFT, GFN2-xTB, force fields); parallel, cached, resumable"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="YAML file with any of the keys below")
    parser.add_argument("--data", type=Path, help="input extxyz")
    parser.add_argument("--out", type=Path, help="output extxyz")
    parser.add_argument("--teacher", help="teacher name (pyscf, gfn2, ...) or module:factory")
    parser.add_argument(
        "--option", action="append", metavar="KEY=VALUE", default=None,
        help="teacher option, repeatable; VALUE is read as YAML (3 -> int, false -> bool)",
    )
    parser.add_argument("--workers", type=int, help="worker processes (default 1)")
    parser.add_argument("--threads-per-worker", type=int, help="OpenMP/BLAS threads per worker (default 1)")
    parser.add_argument("--cache", type=Path, help="cache folder (default: <out>.cache)")
    parser.add_argument("--failures", type=Path, help="JSON report of failed frames (default: <out>.failures.json)")
    parser.add_argument("--retry-failed", action="store_true", default=None, help="recompute cached failures")
    parser.add_argument("--no-progress", dest="progress", action="store_false", default=None,
                        help="hide the progress bar")


def parse_options(items: list[str]) -> dict[str, Any]:
    """``["xc=pbe", "grids_level=3"]`` -> ``{"xc": "pbe", "grids_level": 3}`` (values read as YAML)."""
    import yaml

    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--option '{item}': expected KEY=VALUE")
        parsed = yaml.safe_load(value) if value.strip() else ""
        if isinstance(parsed, str):
            try:  # YAML 1.1 reads "1e-9" as a string
                parsed = float(parsed)
            except ValueError:
                pass
        options[key.strip()] = parsed
    return options


def resolve_config(args: argparse.Namespace):
    """Merge the YAML file and the flags (flags win) and validate; errors name the key at fault."""
    import yaml
    from pydantic import ValidationError

    from ffpt.teachers.runner import LabelConfig

    settings: dict[str, Any] = {}
    source = "command line"
    if args.config is not None:
        source = str(args.config)
        if not args.config.exists():
            raise ValueError(f"{args.config}: no such file")
        try:
            loaded = yaml.safe_load(args.config.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ValueError(f"{args.config}: not valid YAML ({exc})") from None
        if not isinstance(loaded, dict):
            raise ValueError(f"{args.config}: expected a mapping of keys to values")
        settings.update(loaded)
    for key in ("data", "out", "teacher", "workers", "threads_per_worker", "cache", "failures",
                "retry_failed", "progress"):
        value = getattr(args, key)
        if value is not None:
            settings[key] = value
    if args.option:
        base = settings.get("options") or {}
        settings["options"] = {**base, **parse_options(args.option)} if isinstance(base, dict) else base
    try:
        return LabelConfig(**settings)
    except ValidationError as exc:
        problems = "; ".join(
            f"key '{'.'.join(map(str, e['loc']))}': {e['msg']}" for e in exc.errors()
        )
        raise ValueError(f"{source}: {problems}") from None


def run(args: argparse.Namespace) -> int:
    import sys

    from ffpt.data import DataError
    from ffpt.teachers.runner import label_dataset

    try:
        config = resolve_config(args)
        result, n_frames = label_dataset(config)
    except (ValueError, DataError) as exc:  # bad config, data, teacher name or teacher option
        print(f"ffpt label: error: {exc}", file=sys.stderr)
        return 2
    print(
        f"{config.out}: {len(result.frames)}/{n_frames} frames labelled with {result.teacher.name} "
        f"({result.teacher.level}); {result.n_cached} from cache, {result.n_computed} computed"
    )
    if result.failures:
        print(f"{len(result.failures)} frames failed (report: {config.failures_path()}):", file=sys.stderr)
        for failure in result.failures:
            print(f"  frame {failure.index}: {failure.reason}", file=sys.stderr)
    return 0 if result.frames else 1
