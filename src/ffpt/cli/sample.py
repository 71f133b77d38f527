"""``ffpt sample``: cheap labelled configurations around seed structures (FF MD, normal modes, random).

``ffpt sample --seeds CCO water_box.extxyz --teacher mmff94 --out pretrain.extxyz`` or
``ffpt sample sampling.yaml [dotted.key=value ...] [--flags]`` with, for example::

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
    workers: 2                                            # or scheduler: tcp://HOST:8786
"""

from __future__ import annotations

import argparse

from ffpt.cli._config import (
    add_config_arguments, add_execution_arguments, add_teacher_option_argument, resolve_config, teacher_option_flags,
)

HELP = "sample and label pre-training frames around seeds (FF MD, normal modes, random displacements)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, "SamplingConfig keys: seeds, out, teacher, md, normal_modes, random, ...")
    parser.add_argument(
        "--seeds", nargs="+", metavar="SEED",
        help="structure files (xyz/extxyz; periodic frames are cut into molecules), the hydrogen-combustion "
        "data directory, or SMILES",
    )
    parser.add_argument("--out", help="output extxyz file")
    parser.add_argument("--teacher", help="teacher name (default uff): " + "mmff94, uff, spcfw, ...")
    add_teacher_option_argument(parser)
    parser.add_argument("--seed", type=int, help="random seed (default 0)")
    parser.add_argument("--md-temperatures", type=float, nargs="+", metavar="K")
    parser.add_argument("--md-frames", type=int, help="MD frames per seed and temperature (0: no MD)")
    parser.add_argument("--md-stride", type=int, help="MD steps between frames")
    parser.add_argument("--md-timestep", type=float, metavar="FS")
    parser.add_argument("--nm-temperatures", type=float, nargs="+", metavar="K")
    parser.add_argument("--nm-frames", type=int, help="normal-mode frames per seed and temperature (0: none)")
    parser.add_argument("--random-sigmas", type=float, nargs="+", metavar="A")
    parser.add_argument("--random-frames", type=int, help="random frames per seed and width (0: none)")
    add_execution_arguments(parser)
    parser.add_argument("--no-split", dest="split", action="store_false", default=None,
                        help="sample multi-molecule seeds whole instead of one molecule at a time")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


# flag -> dotted config key
FLAGS = {
    "out": "out", "teacher": "teacher", "seed": "seed", "split": "split", "workers": "workers",
    "scheduler": "scheduler",
    "md_temperatures": "md.temperatures", "md_frames": "md.frames", "md_stride": "md.stride",
    "md_timestep": "md.timestep", "nm_temperatures": "normal_modes.temperatures", "nm_frames": "normal_modes.frames",
    "random_sigmas": "random.sigmas", "random_frames": "random.frames",
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
    """:class:`SamplingConfig`: flags > overrides > YAML file > defaults."""
    from ffpt.sampling.config import SamplingConfig

    flags = {key: getattr(args, flag) for flag, key in FLAGS.items()}
    flags["seeds"] = [seed_spec(s) for s in args.seeds] if args.seeds else None
    return resolve_config(SamplingConfig, args, {**flags, **teacher_option_flags(args.teacher_option)})


def run(args: argparse.Namespace) -> int:
    from ffpt.data.frames import DataError
    from ffpt.sampling.run import sample
    from ffpt.teachers import LabelFailure

    config = build_config(args)
    try:
        out = sample(config, progress=not args.no_progress)
    except LabelFailure as exc:  # the teacher cannot handle a seed molecule: an input error, named
        raise DataError(str(exc)) from None
    print(f"wrote {out}")
    return 0
