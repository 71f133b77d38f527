"""ffpt demo: the embedded FFPT-FT vs scratch comparison (ethanol, MMFF94 -> PBE/def2-SVP)."""

HELP = "run the embedded FFPT-FT vs scratch demo (ethanol; needs nothing but the package; <15 min on 2 cores)"


def add_arguments(parser):
    parser.add_argument("--out", default="runs/demo", help="run directory (default runs/demo)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args) -> int:
    import time

    from ffpt.workflows.demo import demo_config
    from ffpt.workflows.experiment import run_experiment
    from ffpt.workflows.summary import print_summary

    start = time.perf_counter()
    results = run_experiment(demo_config(), args.out, progress=not args.quiet)
    print_summary(results, args.out)
    print(f"demo finished in {(time.perf_counter() - start) / 60:.1f} min")
    return 0
