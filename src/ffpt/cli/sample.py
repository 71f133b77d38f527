"""``ffpt sample``: cheap labelled configurations around seed structures (FF MD, normal modes, random).

``ffpt sample --seeds CCO water_box.extxyz --teacher mmff94 --out pretrain.extxyz`` or
``ffpt sample sampling.yaml [--flags]`` with, for example::

    seeds:
      - {smiles: CCO}
      - {file: water_box.extxyz, max_molecules: 4}       # periodic: molecules are cut out
      - {combustion: /path/to/h2combustion, channels: ["09"], topology: reactant}
    out: pretrain.extxyz
    teacher: uff
    seed: 0
    md: {temperatures: [300, 1000, 3000], frames: 100, stride: 10}
    normal_modes: {temperatures: [300, 1000], frames: 100}
    random: null                                          # switched off
"""

from __future__ import annotations

import argparse

HELP = "sample and label pre-training frames around seeds (FF MD, normal modes, random displacements)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="?", help="YAML sampling config (flags below override its values)")
    parser.add_argument(
        "--seeds", nargs="+", metavar="SEED",
        help="structure files (xyz/extxyz; periodic frames are cut into molecules), the hydrogen-combustion "
        "data directory, or SMILES",
    )
    parser.add_argument("--out", help="output extxyz file")
    parser.add_argument("--teacher", help="teacher name (default uff): " + "mmff94, uff, spcfw, ...")
    parser.add_argument("--teacher-option", action="append", default=[], metavar="KEY=VALUE",
                        help="teacher option (value parsed as YAML); repeatable")
    parser.add_argument("--seed", type=int, help="random seed (default 0)")
    parser.add_argument("--md-temperatures", type=float, nargs="+", metavar="K")
    parser.add_argument("--md-frames", type=int, help="MD frames per seed and temperature (0: no MD)")
    parser.add_argument("--md-stride", type=int, help="MD steps between frames")
    parser.add_argument("--md-timestep", type=float, metavar="FS")
    parser.add_argument("--nm-temperatures", type=float, nargs="+", metavar="K")
    parser.add_argument("--nm-frames", type=int, help="normal-mode frames per seed and temperature (0: none)")
    parser.add_argument("--random-sigmas", type=float, nargs="+", metavar="A")
    parser.add_argument("--random-frames", type=int, help="random frames per seed and width (0: none)")
    parser.add_argument("--workers", type=int, default=1, help="processes running tasks in parallel (default 1)")
    parser.add_argument("--no-split", action="store_true",
                        help="sample multi-molecule seeds whole instead of one molecule at a time")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


_SECTIONS = {
    "md": {"md_temperatures": "temperatures", "md_frames": "frames", "md_stride": "stride", "md_timestep": "timestep"},
    "normal_modes": {"nm_temperatures": "temperatures", "nm_frames": "frames"},
    "random": {"random_sigmas": "sigmas", "random_frames": "frames"},
}


def seed_spec(text: str) -> dict:
    """A seed spec from a command-line word: an existing file or directory, else SMILES."""
    from pathlib import Path

    path = Path(text)
    if path.is_dir():
        return {"combustion": text}
    if path.exists():
        return {"file": text}
    return {"smiles": text}


def build_config(args: argparse.Namespace):
    """:class:`SamplingConfig` from the YAML file (if any) with the flags laid over it."""
    from pathlib import Path

    import yaml

    from ffpt.data.frames import DataError
    from ffpt.sampling.config import SamplingConfig

    values: dict = {}
    if args.config:
        path = Path(args.config)
        if not path.exists():
            raise DataError(f"{path}: config file not found")
        values = yaml.safe_load(path.read_text()) or {}
        if not isinstance(values, dict):
            raise DataError(f"{path}: a sampling config must be a mapping of keys to values")
    if args.seeds:
        values["seeds"] = [seed_spec(s) for s in args.seeds]
    for flag, key in (("out", "out"), ("teacher", "teacher"), ("seed", "seed")):
        if getattr(args, flag) is not None:
            values[key] = getattr(args, flag)
    if args.no_split:
        values["split"] = False
    for option in args.teacher_option:
        key, sep, text = option.partition("=")
        if not sep:
            raise DataError(f"--teacher-option '{option}': expected KEY=VALUE")
        values.setdefault("teacher_options", {})[key] = yaml.safe_load(text)
    for section, flags in _SECTIONS.items():
        given = {key: getattr(args, flag) for flag, key in flags.items() if getattr(args, flag) is not None}
        if given:
            if values.get(section) is None and section in values:
                values[section] = {}
            values.setdefault(section, {}).update(given)
    return SamplingConfig.model_validate(values)


def run(args: argparse.Namespace) -> int:
    import sys

    from pydantic import ValidationError

    from ffpt.data.frames import DataError
    from ffpt.sampling.run import sample
    from ffpt.teachers import LabelFailure

    try:
        config = build_config(args)
    except DataError as exc:
        print(f"ffpt sample: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        print(f"ffpt sample: invalid config ({args.config or 'flags'}):\n{exc}", file=sys.stderr)
        return 2
    try:
        out = sample(config, progress=not args.no_progress, workers=args.workers)
    except (DataError, LabelFailure) as exc:  # bad input: the message names the file, frame or molecule
        print(f"ffpt sample: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0
