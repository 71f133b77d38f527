"""ffpt demo: the embedded FFPT-FT vs scratch comparison (ethanol, MMFF94 -> PBE/def2-SVP)."""

from ffpt.cli._config import add_config_arguments, resolve_config
from ffpt.cli._config import add_execution_arguments

HELP = "run the embedded FFPT-FT vs scratch demo (ethanol; needs nothing but the package; <15 min on 2 cores)"


def add_arguments(parser):
    add_config_arguments(parser, "experiment keys laid over the embedded demo, e.g. budgets=[10]")
    parser.add_argument("--out", default="runs/demo", help="run directory (default runs/demo)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_execution_arguments(parser)


def run(args) -> int:
    import time

    from ffpt.workflows.config import ExperimentConfig
    from ffpt.workflows.demo import DEMO
    from ffpt.workflows.experiment import run_experiment
    from ffpt.workflows.summary import print_summary

    start = time.perf_counter()
    config = resolve_config(ExperimentConfig, args, {}, defaults=DEMO)
    results = run_experiment(config, args.out, progress=not args.quiet, workers=args.workers,
                             scheduler=args.scheduler)
    print_summary(results, args.out)
    print(f"demo finished in {(time.perf_counter() - start) / 60:.1f} min")
    return 0
