"""ffpt run: an FFPT-FT vs scratch experiment from one YAML file, every stage cached."""

HELP = "run an FFPT-FT vs scratch experiment (YAML); finished stages are skipped, killed ones resume"


def add_arguments(parser):
    parser.add_argument("experiment", help="experiment YAML (see experiments/)")
    parser.add_argument("overrides", nargs="*", help="dotted.key=value overrides, e.g. budgets=[10,100]")
    parser.add_argument("--out", required=True, help="run directory")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args) -> int:
    from ffpt.training.config import apply_overrides, parse_config, read_yaml
    from ffpt.workflows.config import ExperimentConfig
    from ffpt.workflows.experiment import run_experiment
    from ffpt.workflows.summary import print_summary

    values = apply_overrides(read_yaml(args.experiment), args.overrides)
    config = parse_config(ExperimentConfig, values, args.experiment)
    results = run_experiment(config, args.out, progress=not args.quiet)
    print_summary(results, args.out)
    return 0
