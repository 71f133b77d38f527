"""``ffpt label``: label an extxyz dataset with a teacher (parallel, cached, resumable).

``ffpt label [CONFIG.yaml] [dotted.key=value ...] [--flags]`` (LabelConfig keys; flags win).
Example::

    ffpt label --data in.extxyz --teacher pyscf --teacher-option xc=pbe --teacher-option basis=def2-svp \\
        --workers 2 --out out.extxyz

``--workers N`` starts an embedded Dask cluster of N processes; ``--scheduler tcp://HOST:PORT`` (or a
scheduler JSON file) labels on a running Dask cluster instead.

Exit status: 0 all frames labelled; 3 done, but some frames failed (the labelled ones are written,
the failures listed on stderr and in ``<out>.failures.json``; rerun with ``--retry-failed`` to try
them again); 2 bad input (nothing written).

``--option KEY=VALUE`` and ``--config FILE`` are deprecated aliases (one release).
"""

from __future__ import annotations

import argparse

from ffpt.cli._config import (
    add_config_arguments, add_execution_arguments, add_teacher_option_argument, resolve_config, teacher_option_flags, warn_deprecated,
)
from ffpt.cli._formats import add_format_arguments, format_flags

HELP = "label frames with a teacher (PySCF DFT, GFN2-xTB, force fields); parallel, cached, resumable"
EPILOG = ("exit status: 0 every frame labelled; 3 done, but some frames failed (the labelled frames are "
          "written, the failed ones listed on stderr and in the failures report); 2 bad input or "
          "environment (one line naming the file, key or frame)")

# flag -> config key
FLAGS = ("data", "out", "teacher", "workers", "scheduler", "threads_per_worker", "cache", "failures", "retry_failed", "progress")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    add_config_arguments(parser, "LabelConfig keys: data, out, teacher, teacher_options, workers, ...")
    parser.add_argument("--data", help="input frames: extxyz, npz or ASE db (keys and units: --charge-key, ...)")
    parser.add_argument("--out", help="output extxyz")
    parser.add_argument("--teacher", help="teacher name (pyscf, gfn2, ...) or module:factory")
    add_teacher_option_argument(parser)
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help=argparse.SUPPRESS)
    add_execution_arguments(parser)
    parser.add_argument("--threads-per-worker", type=int, help="OpenMP/BLAS threads per worker (default 1)")
    parser.add_argument("--cache", help="cache folder (default: <out>.cache)")
    parser.add_argument("--failures", help="JSON report of failed frames (default: <out>.failures.json)")
    parser.add_argument("--retry-failed", action="store_true", default=None, help="recompute cached failures")
    parser.add_argument("--no-progress", dest="progress", action="store_false", default=None,
                        help="hide the progress bar")
    add_format_arguments(parser)


def build_config(args: argparse.Namespace):
    """:class:`LabelConfig`: flags > overrides > YAML file; errors name the file and key."""
    from ffpt.teachers.runner import LabelConfig

    if args.option:
        warn_deprecated(args, "--option KEY=VALUE", "--teacher-option KEY=VALUE")
    options = teacher_option_flags([*args.option, *args.teacher_option])
    return resolve_config(LabelConfig, args, {**{key: getattr(args, key) for key in FLAGS}, **format_flags(args), **options})


def run(args: argparse.Namespace) -> int:
    import sys

    from ffpt.cli import EXIT_PARTIAL
    from ffpt.teachers.runner import label_dataset

    config = build_config(args)
    result, n_frames = label_dataset(config)
    print(
        f"{config.out}: {len(result.frames)}/{n_frames} frames labelled with {result.teacher.name} "
        f"({result.teacher.level}); {result.n_cached} from cache, {result.n_computed} computed"
    )
    if result.failures:
        print(f"{len(result.failures)} frames failed (report: {config.failures_path()}):", file=sys.stderr)
        for failure in result.failures:
            print(f"  frame {failure.index}: {failure.reason}", file=sys.stderr)
        return EXIT_PARTIAL
    return 0
