"""ffpt al: active learning with a committee, from a few labels and a teacher (YAML config)."""

import argparse

from ffpt.fileio import absolute
from ffpt.cli._config import add_config_arguments, add_execution_arguments, add_teacher_option_argument, \
    resolve_config, teacher_option_flags

HELP = "active learning: committee MD, label where the members disagree, fine-tune, repeat (YAML config)"

DESCRIPTION = HELP + """

Each round (a cached stage; a killed run resumes inside its round and loses no label):
  1. train    a committee of committee.size members on all labels so far (bootstrap resamples, own
              seeds), fine-tuned from `pretrained` (FFPT-FT) or from scratch, later rounds warm-started
  2. explore  committee MD (or `explore.metad`) from every explore.structures x temperatures_K, `runs`
              seeds each, with stability monitors: the stable fraction is the round's stability
  3. stop     when stop.stable_fraction is reached, stop.max_labels spent or `rounds` rounds done
  4. select   saved frames whose max per-atom force spread is within [select.lower, select.upper] eV/A,
              spaced by select.min_spacing_fs and picked by farthest-point sampling, <= max_per_round
  5. label    with `teacher` (any ffpt teacher: gfn2, pyscf, ...), cached per frame

Minimal config (your molecule, your teacher):
  labels: my_labels.extxyz        # a few ab initio frames
  pretrained: runs/pretrain/model.pt   # optional: FFPT-FT; leave out to train from scratch
  teacher: gfn2
  test: my_test.extxyz            # optional: the committee's test errors per round (else '-')
  explore: {structures: [my_molecule.xyz], temperatures_K: [500], runs: 8,
            md: {steps: 4000, timestep_fs: 0.5, monitors: {max_bond_deviation: 0.5}}}
  # explore.md.ensemble defaults to langevin at temperatures_K (nve and bussi on request)
Outputs: OUT/report.md, rounds.json, stability_vs_labels.png, spread.png, round_NN_*/."""


def add_arguments(parser):
    parser.description = DESCRIPTION
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add_config_arguments(parser, "ALConfig: labels, teacher, explore, select, committee, rounds, stop")
    parser.add_argument("--labels", help="first ab initio labels (extxyz, npz or ASE db)")
    parser.add_argument("--pretrained", help="pre-trained model file: members fine-tune from it (FFPT-FT)")
    parser.add_argument("--teacher", help="teacher of the new labels, e.g. gfn2 or pyscf")
    add_teacher_option_argument(parser)
    parser.add_argument("--committee", type=int, metavar="K", help="committee members (default 4)")
    parser.add_argument("--rounds", type=int, help="most rounds of new labels (default 5)")
    parser.add_argument("--out", required=True, help="run folder (resumes a killed run)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_execution_arguments(parser)


def check_inputs(config) -> None:
    """The teacher and the pre-trained model exist: a ConfigError naming the key, before any work."""
    from ffpt.config import ConfigError
    from ffpt.teachers.runner import teacher_target

    try:
        teacher_target(config.teacher)
    except ValueError as exc:
        raise ConfigError(f"key 'teacher': {exc}") from None
    if config.pretrained is not None and not config.pretrained.is_file():
        raise ConfigError(f"{config.pretrained}: no such model file (key 'pretrained', --pretrained)")


def run(args) -> int:
    from ffpt.workflows.active_learning import ALConfig, run_active_learning

    flags = {"labels": args.labels, "pretrained": args.pretrained, "teacher": args.teacher,
             "committee.size": args.committee, "rounds": args.rounds, "workers": args.workers,
             **teacher_option_flags(args.teacher_option)}
    config = resolve_config(ALConfig, args, flags)
    check_inputs(config)
    summary = run_active_learning(config, absolute(args.out), progress=not args.quiet, scheduler=args.scheduler)
    last = summary["rounds"][-1]
    print(f"{summary['arm']}: {summary['n_initial']} + {summary['labels_added']} labels, last round "
          f"{last['n_stable']}/{last['n_runs']} stable; stopped: {summary['stop']}")
    print(f"{args.out}/report.md")
    return 0
