"""The report's NPT density table: each arm's density, drift and whether it has plateaued."""

import numpy as np

from ffpt.observables.density import RunDensity, summarize_density
from ffpt.workflows.report import _density_table


def test_the_density_table_says_which_arm_has_plateaued():
    rng = np.random.default_rng(0)
    time = np.arange(0.0, 10001.0, 20.0)

    def run(drift_per_ps: float) -> RunDensity:
        return RunDensity(time.tolist(), (0.9 + drift_per_ps * time / 1000 + rng.normal(0, 0.01, len(time))).tolist())

    arms = {"ffpt-ft": summarize_density([run(0.0) for _ in range(4)], from_fs=5000),
            "scratch": summarize_density([run(-0.05) for _ in range(4)], from_fs=5000),
            "short": summarize_density([RunDensity([0.0, 10.0], [0.9, 0.9])], from_fs=0)}
    lines = _density_table({"arms": {arm: s.as_dict() for arm, s in arms.items()}, "reference": None, "welch": None})
    header = next(line for line in lines if line.startswith("| arm"))
    assert header.rstrip(" |").endswith("plateau")
    rows = {line.split(" | ")[0].lstrip("| "): line for line in lines if line.startswith("| ") and "---" not in line}
    assert rows["ffpt-ft"].endswith("| yes |") and rows["scratch"].endswith("| no |")
    assert rows["short"].endswith("| — |")  # too few frames to test
    assert any("within ±0.01 g/cm³/ps" in line for line in lines)
