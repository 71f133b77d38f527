"""ffpt run: an FFPT-FT vs scratch experiment from one YAML file, every stage cached."""

HELP = "run an FFPT-FT vs scratch experiment (YAML); finished stages are skipped, killed ones resume"


def add_arguments(parser):
    parser.add_argument("experiment", help="experiment YAML (see experiments/)")
    parser.add_argument("overrides", nargs="*", help="dotted.key=value overrides, e.g. budgets=[10,100]")
    parser.add_argument("--out", required=True, help="run directory")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args) -> int:
    from ffpt.config import load_config
    from ffpt.workflows.config import ExperimentConfig
    from ffpt.workflows.experiment import run_experiment
    from ffpt.workflows.summary import print_summary

    config = load_config(ExperimentConfig, args.experiment, args.overrides)
    results = run_experiment(config, args.out, progress=not args.quiet)
    print_summary(results, args.out)
    return 0
