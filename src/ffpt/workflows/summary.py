"""Terminal summary of an experiment's results."""

from __future__ import annotations

from pathlib import Path


def print_summary(results: dict, out: str | Path) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{results['experiment']}: FFPT-FT vs scratch")
    for col in ("arm", "labels", "force MAE (meV/Å)", "energy MAE (meV/atom)", "stable", "median TTF (fs)"):
        table.add_column(col)
    for arm, r in results["arms"].items():
        def fmt(x, d=1):
            return "n/a" if x is None else f"{x:.{d}f}"

        table.add_row(arm, str(r["budget"]), fmt(r["force_mae_mev_per_a"]), fmt(r["energy_mae_mev_per_atom"], 2),
                      fmt(r["stable_fraction"], 2), fmt(r["median_time_to_failure_fs"], 0))
    Console().print(table)
    print(Path(out) / "report.md")
