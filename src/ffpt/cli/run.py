"""ffpt run: an FFPT-FT vs scratch experiment from one YAML file, every stage cached."""

from ffpt.cli._config import add_config_arguments, add_execution_arguments, resolve_config
from ffpt.fileio import absolute

HELP = "run an FFPT-FT vs scratch experiment (YAML); finished stages are skipped, killed ones resume"


def add_arguments(parser):
    add_config_arguments(parser, "experiment, see experiments/")
    parser.add_argument("--out", required=True, help="run directory")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_execution_arguments(parser)


def run(args) -> int:
    from ffpt.config import ConfigError
    from ffpt.workflows.config import ExperimentConfig
    from ffpt.workflows.experiment import run_experiment
    from ffpt.workflows.summary import print_summary

    if args.config is None and args.config_flag is None:
        raise ConfigError("missing the experiment YAML: ffpt run EXPERIMENT.yaml [key=value ...] --out DIR")
    config = resolve_config(ExperimentConfig, args, {})
    results = run_experiment(config, absolute(args.out), progress=not args.quiet, workers=args.workers,
                             scheduler=args.scheduler)
    print_summary(results, args.out)
    return 0
