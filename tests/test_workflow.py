"""The experiment workflow at toy scale: every stage runs, a rerun skips them all, a kill resumes."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from ffpt.fileio import output_lock

TOY = {
    "name": "toy methanol",
    "seeds": [{"smiles": "CO", "name": "methanol"}],
    "pretraining": {
        "teacher": "mmff94",
        "md": {"temperatures": [600.0], "frames": 24, "stride": 5, "equilibration": 20},
        "normal_modes": None,
        "random": {"sigmas": [0.05], "frames": 12},
    },
    "abinitio": {
        "teacher": "gfn2",
        "sampling": {"seed": 1, "md": {"temperatures": [800.0], "frames": 16, "stride": 10, "equilibration": 20},
                     "normal_modes": None, "random": None},
        "workers": 1, "n_test": 4, "n_valid": 2,
    },
    "budgets": [4, 8],
    "model": {"n_features": 8, "n_layers": 1, "n_basis": 4, "cutoff": 4.0},
    "pretrain": {"max_epochs": 2, "batch_size": 8, "progress_bar": False},
    "finetune": {"max_epochs": 2, "batch_size": 4, "progress_bar": False},
    "stability": {"n_runs": 2, "md": {"steps": 30, "temperature_K": 500.0, "ensemble": "langevin",
                                     "save_every": 10, "check_every": 5, "monitors": {"max_bond_deviation": 0.5}}},
}

STAGES = ["ff_sampling", "abinitio", "pretrain_s0", "ffpt-ft_n4_s0", "scratch_n4_s0", "ffpt-ft_n8_s0",
          "scratch_n8_s0", "evaluate", "stability_ffpt-ft_n4_s0", "stability_scratch_n4_s0",
          "stability_ffpt-ft_n8_s0", "stability_scratch_n8_s0"]


def ffpt(*args, **kw):
    return subprocess.run([sys.executable, "-m", "ffpt", *args], capture_output=True, text=True, timeout=300, **kw)


@pytest.fixture(scope="module")
def toy_yaml(tmp_path_factory):
    path = tmp_path_factory.mktemp("exp") / "toy.yaml"
    path.write_text(yaml.safe_dump(TOY))
    return path


def test_every_stage_runs_then_rerun_skips_all(toy_yaml, tmp_path):
    out = tmp_path / "run"
    first = ffpt("run", str(toy_yaml), "--out", str(out), "--quiet")
    assert first.returncode == 0, first.stderr[-3000:]
    for stage in STAGES:
        assert f"[{stage}] running" in first.stdout, stage
        assert (out / stage / "stage.json").exists()
    results = json.loads((out / "results.json").read_text())
    for arm in ("ffpt-ft", "scratch"):
        r = results["arms"][arm]
        assert r["force_mae_mev_per_a"] > 0 and r["energy_mae_mev_per_atom"] >= 0
        assert 0 <= r["stable_fraction"] <= 1
        assert set(r["by_budget"]) == {"4", "8"} or set(r["by_budget"]) == {4, 8}
        lo, hi = r["stable_fraction_ci95"]
        assert 0 <= lo <= r["stable_fraction"] <= hi <= 1
    for budget in ("4", "8"):  # stability at every budget: intervals and the log-rank test
        entry = results["stability"][budget]
        assert all(len(entry["arms"][arm]["stable_fraction_ci95"]) == 2 for arm in ("ffpt-ft", "scratch"))
        assert 0 <= entry["logrank"]["pvalue"] <= 1
        assert (out / f"survival_n{budget}.png").exists()
    report = (out / "report.md").read_text()
    assert "ffpt-ft" in report and "scratch" in report and "learning_curve.png" in report
    assert (out / "learning_curve.png").stat().st_size > 1000
    second = ffpt("run", str(toy_yaml), "--out", str(out), "--quiet")
    assert second.returncode == 0, second.stderr[-3000:]
    for stage in STAGES:
        assert f"[{stage}] up to date, skipped" in second.stdout, stage
    assert "running" not in second.stdout
    # a changed fine-tuning budget reruns only what depends on it; stability seeds on 2 Dask workers
    third = ffpt("run", str(toy_yaml), "budgets=[4]", "--out", str(out), "--quiet", "--workers", "2")
    assert third.returncode == 0, third.stderr[-3000:]
    assert "[pretrain_s0] up to date, skipped" in third.stdout
    assert "[ffpt-ft_n4_s0] up to date, skipped" in third.stdout
    assert "[evaluate] running" in third.stdout
    assert "[stability_ffpt-ft_n4_s0] up to date, skipped" in third.stdout  # the same n4 model
    assert "stability_ffpt-ft_n8_s0" not in third.stdout
    assert all((out / "stability_ffpt-ft_n4_s0" / f"seed_{s}" / "stability.json").exists() for s in (0, 1))



def test_models_train_as_parallel_chains_on_workers(toy_yaml, tmp_path):
    """``--workers 2``: each arm's chain (pre-training, both budgets, MD stability) runs as one task on the
    workers; the pass that follows finds every model and MD stage done, then evaluates and reports."""
    out = tmp_path / "run"
    run = ffpt("run", str(toy_yaml), "--out", str(out), "--quiet", "--workers", "2")
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.splitlines()
    for stage in [s for s in STAGES[2:] if s != "evaluate"]:  # cached when the experiment's own pass gets there
        assert f"[{stage}] up to date, skipped" in lines and f"[{stage}] running" not in lines, stage
        assert (out / stage / "stage.json").exists()
    assert "[evaluate] running" in run.stdout
    results = json.loads((out / "results.json").read_text())
    assert set(results["stability"]) == {"4", "8"} and set(results["arms"]) == {"ffpt-ft", "scratch"}

def test_killed_run_resumes(toy_yaml, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "ffpt", "run", str(toy_yaml), "pretrain.max_epochs=40", "--out", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    ckpt = out / "pretrain_s0" / "checkpoints" / "last.ckpt"
    deadline = time.time() + 600
    while time.time() < deadline and not ckpt.exists() and proc.poll() is None:
        time.sleep(0.2)
    assert proc.poll() is None, f"the run ended before pretraining checkpointed: {proc.stderr.read()[-2000:]}"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert ckpt.exists(), "pretraining never checkpointed"
    assert (out / "ff_sampling" / "stage.json").exists() and not (out / "pretrain_s0" / "stage.json").exists()
    resumed = ffpt(*cmd[3:])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "[pretrain_s0] resuming" in resumed.stdout
    assert "[ff_sampling] up to date, skipped" in resumed.stdout
    assert "[abinitio] up to date, skipped" in resumed.stdout
    assert (out / "results.json").exists()


def test_a_second_run_into_the_same_folder_is_refused(toy_yaml, tmp_path):
    """Two runs in one folder would rerun and overwrite each other's stages: the second exits 2."""
    out = tmp_path / "run"
    with output_lock(out, "experiment"):  # as a first run holds it
        second = ffpt("run", str(toy_yaml), "--out", str(out), "--quiet")
    assert second.returncode == 2
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and "is being written by experiment, pid" in lines[0] and str(out) in lines[0]
    assert not out.exists() or not any(out.iterdir())  # nothing written
