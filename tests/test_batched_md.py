"""Batched MD replicas (ffpt.dynamics.batched): physics and bookkeeping against single runs.

A tiny NewtonNet (float64) serves as the potential; every replica of a batch is evaluated in one model call.
"""

import json
from pathlib import Path

import ase.io
import numpy as np
import pytest
import torch
from ase import units
from ase.build import molecule
from ase.constraints import FixAtoms

from ffpt.cli import main
from ffpt.config import ConfigError
from ffpt.dynamics.batched import ReplicaSpec, run_replicas
from ffpt.dynamics.trajectory import TrajectoryWriter
from ffpt.dynamics.engine import MonitorObserver, Observer
from ffpt.jobs.md import CalculatorSpec, run_batch
from ffpt.models.calculator import MLIPCalculator
from ffpt.models.batched import ModelBatch, evaluate_each
from ffpt.models.model_file import save_model
from ffpt.models.newtonnet import NewtonNet
from ffpt.simulate.config import MDConfig
from ffpt.simulate.md import CONFIG_FILE, integrator
from ffpt.simulate.monitors import FiniteMonitor, Monitor


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    torch.manual_seed(0)
    model = NewtonNet(elements=[1, 6, 8], cutoff=4.0, n_features=8, n_layers=1, n_basis=4).double()
    return save_model(model, tmp_path_factory.mktemp("model") / "tiny.pt")


@pytest.fixture(scope="module")
def evaluator(model_file):
    return ModelBatch(MLIPCalculator.from_file(model_file).model)


def ethanol():
    return molecule("CH3CH2OH")


def checkpoint(folder: Path) -> dict:
    return json.loads((folder / "checkpoint.json").read_text())


def specs(structures, seeds, root: Path, config: MDConfig, extra=lambda seed: []):
    """Replica specs with the monitors and trajectory of a run, into ``root/seed_<seed>``."""
    out = []
    for atoms, seed in zip(structures, seeds):
        folder = root / f"seed_{seed}"
        observers = [MonitorObserver([FiniteMonitor(), *extra(seed)], config.check_every),
                     TrajectoryWriter(folder / "trajectory.extxyz", config.save_every, sync=False)]
        out.append(ReplicaSpec(atoms.copy(), seed, folder, observers,
                               config.model_copy(update={"seed": seed}).model_dump(mode="json")))
    return out


def run(evaluator, replica_specs, config: MDConfig, evaluate=None):
    return run_replicas(replica_specs, evaluate or (lambda systems: evaluate_each(evaluator, systems)),
                        integrator(config), steps=config.steps, config_name=CONFIG_FILE,
                        checkpoint_every=config.save_every, progress=False)


# ----------------------------------------------------------------- physics


def test_batched_evaluation_equals_the_calculator(model_file):
    """Energies and forces of systems of different sizes (and a periodic box) from one model call, or
    from calls of at most 30 neighbour pairs, equal the ASE calculator's one frame at a time (1e-10 eV, eV/A)."""
    calculator = MLIPCalculator.from_file(model_file)
    box = molecule("H2O")
    box.set_cell([3.0, 3.2, 3.4])
    box.pbc = True
    systems = [ethanol(), molecule("CH4"), box, molecule("H2O"), ethanol()]
    for k, atoms in enumerate(systems):
        atoms.rattle(0.05, seed=k)
    for max_edges in (None, 10**6, 30):
        results = ModelBatch(calculator.model, max_edges=max_edges).evaluate(systems)
        assert len(results) == len(systems)
        for atoms, result in zip(systems, results):
            reference = atoms.copy()
            reference.calc = calculator
            assert abs(result["energy"] - reference.get_potential_energy()) < 1e-10
            assert np.abs(result["forces"] - reference.get_forces()).max() < 1e-10


@pytest.mark.parametrize("ensemble", ["nve", "langevin", "bussi"])
def test_replica_equals_its_single_run(tmp_path, model_file, ensemble):
    """Each replica of a batch of 3 follows its single run (same seed) to rounding: positions within
    1e-9 A after 40 steps, generator states equal, the same frames; NVE energy drift of each replica
    equals its single run's within 1e-9 eV and stays below 5 meV."""
    config = MDConfig(steps=40, timestep_fs=0.5, temperature_K=300, ensemble=ensemble, save_every=10,
                      friction_per_fs=0.05, taut_fs=20.0)
    seeds = [0, 1, 2]
    single = run_batch(ethanol(), CalculatorSpec(str(model_file)), seeds, config, tmp_path / "single", progress=False)
    batched = run_batch(ethanol(), CalculatorSpec(str(model_file)), seeds, config.model_copy(update={"batch": 3}),
                        tmp_path / "batched", progress=False)
    for seed, a, b in zip(seeds, single.results, batched.results):
        x, y = checkpoint(tmp_path / "single" / f"seed_{seed}"), checkpoint(tmp_path / "batched" / f"seed_{seed}")
        assert x["step"] == y["step"] == 40 and x["rng"] == y["rng"]
        assert np.abs(np.subtract(x["positions"], y["positions"])).max() < 1e-9
        assert np.abs(np.subtract(x["momenta"], y["momenta"])).max() < 1e-9
        fa = ase.io.read(tmp_path / "single" / f"seed_{seed}" / "trajectory.extxyz", ":")
        fb = ase.io.read(tmp_path / "batched" / f"seed_{seed}" / "trajectory.extxyz", ":")
        assert [f.info["step"] for f in fa] == [f.info["step"] for f in fb] == [0, 10, 20, 30, 40]
        assert a.stable and b.stable and a.n_frames == b.n_frames == 5
        if ensemble == "nve":
            drift_a = fa[-1].info["etot"] - fa[0].info["etot"]
            drift_b = fb[-1].info["etot"] - fb[0].info["etot"]
            assert abs(drift_a - drift_b) < 1e-9 and abs(drift_b) < 5e-3
        if ensemble == "bussi":
            assert abs(fa[-1].info["bath_energy"] - fb[-1].info["bath_energy"]) < 1e-9


class KineticEnergies(Observer):
    """Records the kinetic energy (eV) every ``every`` steps past ``skip``."""

    name = "kinetic"

    def __init__(self, skip: int, every: int = 5):
        self.skip, self.every, self.values = skip, every, []

    def on_step(self, state):
        if state.step > self.skip and state.step % self.every == 0:
            self.values.append(state.atoms.get_kinetic_energy())


@pytest.mark.parametrize("ensemble", ["langevin", "bussi"])
def test_thermostatted_batch_samples_the_canonical_kinetic_energy(tmp_path, evaluator, ensemble):
    """16 replicas of methane (12 degrees of freedom with the centre of mass fixed) at 300 K, 800
    steps of 1 fs after 200 of equilibration, sampled every 5: the canonical kinetic energy is Gamma(ndof/2, kT),
    mean ndof kT/2 and variance ndof (kT)^2/2, whatever the potential. Replica averages are
    independent; the bound is 4 standard errors over the replicas, and at most 6 % (mean), 25 %
    (variance): a wrong noise amplitude (sqrt 2) or a missing mass factor fails both."""
    config = MDConfig(steps=1000, timestep_fs=1.0, temperature_K=300, ensemble=ensemble, friction_per_fs=0.05,
                      taut_fs=10.0, save_every=1000, check_every=100)
    recorders = {seed: KineticEnergies(skip=200) for seed in range(16)}
    replica_specs = specs([molecule("CH4")] * 16, range(16), tmp_path, config)
    for spec in replica_specs:
        spec.observers = [*spec.observers, recorders[spec.seed]]
    results = run(evaluator, replica_specs, config)
    assert all(r.stable for r in results)
    kT, ndof = units.kB * 300, 3 * 5 - 3
    means = np.array([np.mean(r.values) for r in recorders.values()]) / (ndof * kT / 2)
    variances = np.array([np.var(r.values) for r in recorders.values()]) / (ndof * kT**2 / 2)
    for ratios, limit in ((means, 0.06), (variances, 0.25)):
        sem = ratios.std(ddof=1) / np.sqrt(len(ratios))
        assert abs(ratios.mean() - 1) < min(4 * sem, limit), (ratios.mean(), sem)


def test_replica_does_not_depend_on_its_companions(tmp_path, evaluator):
    """Ethanol seed 5 alone, and in a batch with methane, water and another ethanol (different
    structures and sizes): the same trajectory (positions within 1e-10 A after 60 Langevin steps)."""
    config = MDConfig(steps=60, timestep_fs=0.5, temperature_K=500, ensemble="langevin", save_every=20)
    run(evaluator, specs([ethanol()], [5], tmp_path / "alone", config), config)
    mixed = [molecule("CH4"), ethanol(), molecule("H2O"), ethanol()]
    run(evaluator, specs(mixed, [1, 5, 2, 3], tmp_path / "mixed", config), config)
    alone, shared = checkpoint(tmp_path / "alone" / "seed_5"), checkpoint(tmp_path / "mixed" / "seed_5")
    assert alone["step"] == shared["step"] == 60 and alone["rng"] == shared["rng"]
    assert np.abs(np.subtract(alone["positions"], shared["positions"])).max() < 1e-10
    assert np.abs(np.subtract(alone["momenta"], shared["momenta"])).max() < 1e-10


# ----------------------------------------------------------------- failures, resume


class FailsAt(Monitor):
    """Fires at ``at_fs`` (a replica that becomes unstable)."""

    name = "bond"

    def __init__(self, at_fs):
        self.at_fs = at_fs

    def check(self, atoms, time_fs):
        return f"broke at {time_fs:g} fs" if time_fs >= self.at_fs else None


def test_failed_replicas_leave_and_the_others_continue(tmp_path, evaluator):
    """Of four replicas, seed 1 fails a monitor at 10 fs and seed 2's evaluation raises at its 13th
    step; they stop there (recorded as a single run records them), and seeds 0 and 3 run to the end
    exactly as in a batch without the failures."""
    config = MDConfig(steps=50, timestep_fs=1.0, temperature_K=300, ensemble="langevin", save_every=5,
                      check_every=5)
    calls = {"n": 0}

    def flaky(systems):
        calls["n"] += 1
        results = evaluate_each(evaluator, systems)
        if calls["n"] == 14:  # the first evaluation is the start frame's
            index = next(k for k, s in enumerate(systems) if s.info.get("tag") == "flaky")
            results[index] = RuntimeError("neighbour list overflow")
        return results

    structures = [ethanol() for _ in range(4)]
    structures[2].info["tag"] = "flaky"
    results = run(evaluator, specs(structures, [0, 1, 2, 3], tmp_path / "batch", config,
                                   extra=lambda seed: [FailsAt(10.0)] if seed == 1 else []), config, evaluate=flaky)
    assert [r.stable for r in results] == [True, False, False, True]
    assert (results[1].monitor, results[1].failed_at_fs) == ("bond", 10.0)
    assert (results[2].monitor, results[2].failed_at_fs) == ("calculator", 13.0)
    assert "neighbour list overflow" in results[2].reason
    assert json.loads((tmp_path / "batch" / "seed_2" / "stability.json").read_text())["monitor"] == "calculator"
    assert checkpoint(tmp_path / "batch" / "seed_2")["stop"]["monitor"] == "calculator"
    clean = run(evaluator, specs([ethanol(), ethanol()], [0, 3], tmp_path / "clean", config), config)
    assert all(r.stable and r.steps == 50 for r in clean) and results[0].steps == results[3].steps == 50
    for seed in (0, 3):
        a, b = checkpoint(tmp_path / "batch" / f"seed_{seed}"), checkpoint(tmp_path / "clean" / f"seed_{seed}")
        assert np.abs(np.subtract(a["positions"], b["positions"])).max() < 1e-10


class Kill(Observer):
    """Simulates a kill of the process at ``step`` (after the checkpoint of an earlier step)."""

    name = "kill"

    def __init__(self, step):
        self.step = step

    def on_step(self, state):
        if state.step == self.step:
            raise KeyboardInterrupt


def test_killed_batch_resumes_bit_identically(tmp_path, evaluator):
    """A batch of three (Bussi, two structures) killed at step 23 resumes from the checkpoints of step 20
    and ends bit-identical to an uninterrupted batch: the same positions, momenta, generator and bath
    states and the same trajectory frames; a finished batch is not rerun."""
    config = MDConfig(steps=40, timestep_fs=0.5, temperature_K=400, ensemble="bussi", taut_fs=20.0,
                      save_every=10)
    structures = [ethanol(), molecule("CH4"), ethanol()]
    killed = specs(structures, [0, 1, 2], tmp_path / "killed", config)
    killed[1].observers = [*killed[1].observers, Kill(23)]
    with pytest.raises(KeyboardInterrupt):
        run(evaluator, killed, config)
    assert checkpoint(tmp_path / "killed" / "seed_1")["step"] == 20
    resumed = run(evaluator, specs(structures, [0, 1, 2], tmp_path / "killed", config), config)
    reference = run(evaluator, specs(structures, [0, 1, 2], tmp_path / "reference", config), config)
    for seed, a, b in zip([0, 1, 2], resumed, reference):
        x, y = checkpoint(tmp_path / "killed" / f"seed_{seed}"), checkpoint(tmp_path / "reference" / f"seed_{seed}")
        for key in ("step", "positions", "momenta", "rng", "bath_energy", "stop"):
            assert x[key] == y[key], key
        fx = ase.io.read(tmp_path / "killed" / f"seed_{seed}" / "trajectory.extxyz", ":")
        fy = ase.io.read(tmp_path / "reference" / f"seed_{seed}" / "trajectory.extxyz", ":")
        assert [f.info["step"] for f in fx] == [f.info["step"] for f in fy] == [0, 10, 20, 30, 40]
        assert all(np.array_equal(p.positions, q.positions) and p.info["etot"] == q.info["etot"]
                   for p, q in zip(fx, fy))
        assert a.n_frames == b.n_frames == 5 and a.stable
    again = run(evaluator, specs(structures, [0, 1, 2], tmp_path / "killed", config), config)
    assert again == resumed


def test_single_run_folder_resumes_under_the_batch(tmp_path, model_file):
    """A seed folder is the same either way: one run at a time for 20 steps, then batched to 40,
    equals 40 batched steps (to rounding)."""
    config = MDConfig(steps=20, timestep_fs=0.5, temperature_K=300, ensemble="langevin", save_every=10)
    spec = CalculatorSpec(str(model_file))
    run_batch(ethanol(), spec, [0, 1], config, tmp_path / "mixed", progress=False)
    longer = config.model_copy(update={"steps": 40, "batch": 2})
    run_batch(ethanol(), spec, [0, 1], longer, tmp_path / "mixed", progress=False)
    run_batch(ethanol(), spec, [0, 1], longer, tmp_path / "batched", progress=False)
    for seed in (0, 1):
        a, b = checkpoint(tmp_path / "mixed" / f"seed_{seed}"), checkpoint(tmp_path / "batched" / f"seed_{seed}")
        assert a["step"] == b["step"] == 40 and a["rng"] == b["rng"]
        assert np.abs(np.subtract(a["positions"], b["positions"])).max() < 1e-9


def test_any_calculator_batches_one_system_at_a_time(tmp_path):
    """A calculator that is not an ffpt model file (here ASE's EMT) runs under the batch too, one call
    per replica (with a warning), and gives each seed its single run (positions within 1e-9 A)."""
    from ase.calculators.emt import EMT

    config = MDConfig(steps=30, timestep_fs=0.5, temperature_K=300, ensemble="bussi", taut_fs=20.0, save_every=10)
    run_batch(ethanol(), EMT, [0, 1], config, tmp_path / "single", progress=False)
    with pytest.warns(UserWarning, match="once per replica and step"):
        run_batch(ethanol(), EMT, [0, 1], config.model_copy(update={"batch": 2}), tmp_path / "batched",
                  progress=False)
    for seed in (0, 1):
        a, b = checkpoint(tmp_path / "single" / f"seed_{seed}"), checkpoint(tmp_path / "batched" / f"seed_{seed}")
        assert a["step"] == b["step"] == 30 and a["rng"] == b["rng"]
        assert np.abs(np.subtract(a["positions"], b["positions"])).max() < 1e-9


def test_structure_constraints_are_refused(tmp_path, evaluator):
    config = MDConfig(steps=5)
    fixed = ethanol()
    fixed.set_constraint(FixAtoms([0]))
    with pytest.raises(ConfigError, match="constraints \\(FixAtoms\\)"):
        run(evaluator, specs([fixed], [0], tmp_path, config), config)


# ----------------------------------------------------------------- command line


def test_cli_batch_writes_what_the_seed_batch_writes(tmp_path, model_file, capsys):
    """``--seeds 0..3 --batch 4`` writes the files of ``--seeds 0 1 2 3``: the same layout, per-seed
    configs, stability records (wall time aside) and batch summary, frames equal to rounding."""
    start = tmp_path / "ethanol.xyz"
    ase.io.write(start, ethanol())
    common = ["md", "--calculator", str(model_file), "--structure", str(start), "--steps", "20", "--ensemble",
              "langevin", "--save-every", "5", "--no-progress"]
    assert main([*common, "--out", str(tmp_path / "list"), "--seeds", "0", "1", "2", "3"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert main([*common, "--out", str(tmp_path / "batch"), "--seeds", "0..3", "--batch", "4"]) == 0
    batched = json.loads(capsys.readouterr().out)
    assert batched == listed and batched["seeds"] == [0, 1, 2, 3]
    files = lambda root: sorted(str(p.relative_to(root)) for p in root.rglob("*") if ".lock" not in p.name)
    assert files(tmp_path / "batch") == files(tmp_path / "list")
    assert "seed_3/trajectory.extxyz" in files(tmp_path / "batch")
    for seed in range(4):
        a, b = tmp_path / "list" / f"seed_{seed}", tmp_path / "batch" / f"seed_{seed}"
        assert (a / "md_config.yaml").read_text() == (b / "md_config.yaml").read_text()
        sa, sb = (json.loads((d / "stability.json").read_text()) for d in (a, b))
        assert {k: v for k, v in sa.items() if k != "wall_s"} == {k: v for k, v in sb.items() if k != "wall_s"}
        fa, fb = ase.io.read(a / "trajectory.extxyz", ":"), ase.io.read(b / "trajectory.extxyz", ":")
        assert len(fa) == len(fb) == 5
        assert max(np.abs(x.positions - y.positions).max() for x, y in zip(fa, fb)) < 1e-7
    summary = [json.loads((tmp_path / d / "batch.json").read_text()) for d in ("list", "batch")]
    assert summary[0].keys() == summary[1].keys() and summary[0]["survival"] == summary[1]["survival"]


@pytest.mark.parametrize("flags, message", [
    (["--seeds", "3..1", "--batch", "2"], "--seeds: range '3..1' is empty"),
    (["--seeds", "0", "x"], "--seeds: 'x' is neither an integer nor a range"),
    (["--seeds", "0..2", "1"], "--seeds: seed 1 is given twice"),
    (["--batch", "4"], "--batch (md.batch) runs several seeds together"),
    (["--seeds", "0", "1", "--batch", "0"], "key 'batch'"),
    (["--seeds", "0", "1", "--batch", "2", "--ensemble", "npt"], "npt runs one replica at a time"),
])
def test_cli_user_errors_exit_2_with_one_line(tmp_path, model_file, flags, message, capsys):
    start = tmp_path / "ethanol.xyz"
    ase.io.write(start, ethanol())
    status = main(["md", "--calculator", str(model_file), "--structure", str(start), "--out", str(tmp_path / "out"),
                   "--steps", "5", *flags])
    err = capsys.readouterr().err
    assert status == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in err


# ----------------------------------------------------------------- experiments


def test_experiment_stability_batch(tmp_path, model_file):
    """``stability.batch`` runs a stability stage as batched replicas (the files of the one-at-a-time stage,
    the same outcomes), leaves the stage key as it is, takes exported packages too, and refuses md.batch."""
    from pydantic import ValidationError

    from ffpt.workflows.config import ExperimentConfig
    from ffpt.workflows.experiment import stability_settings, stability_stage

    start = tmp_path / "ethanol.xyz"
    ase.io.write(start, ethanol())
    toy = {"name": "toy", "seeds": [{"smiles": "CCO", "name": "ethanol"}], "budgets": [4], "abinitio": {"teacher": "gfn2"},
           "stability": {"structure": str(start), "n_runs": 3,
                         "md": {"steps": 20, "ensemble": "langevin", "save_every": 10}}}
    single = ExperimentConfig.model_validate(toy)
    batched = ExperimentConfig.model_validate({**toy, "stability": {**toy["stability"], "batch": 3}})
    assert stability_settings(single) == stability_settings(batched)
    one = stability_stage(single, tmp_path / "single", "ffpt-ft", str(model_file), {}, False)
    many = stability_stage(batched, tmp_path / "batched", "ffpt-ft", str(model_file), {}, False)
    assert one["seeds"] == many["seeds"] == [0, 1, 2]
    assert one["time_to_failure_fs"] == many["time_to_failure_fs"]
    for seed in range(3):
        config = [(tmp_path / d / f"seed_{seed}" / "md_config.yaml").read_text() for d in ("single", "batched")]
        assert config[0] == config[1]
    assert ExperimentConfig.model_validate({**toy, "stability": {**toy["stability"], "batch": 2, "exported": True}})
    with pytest.raises(ValidationError, match="stability.batch"):
        ExperimentConfig.model_validate({**toy, "stability": {**toy["stability"], "md": {"batch": 2}}})


def test_active_learning_exploration_batches_its_seeds(tmp_path, model_file):
    """``explore.md.batch``: a round's committee MD runs of one structure and temperature as batched
    replicas; the same run folders and records (wall time aside) as one run per task."""
    import torch as _torch

    from ffpt.models.committee import write_committee_file
    from ffpt.workflows.active_learning import ActiveLearningSettings, explore_round

    _torch.manual_seed(1)
    other = save_model(NewtonNet(elements=[1, 6, 8], cutoff=4.0, n_features=8, n_layers=1, n_basis=4).double(),
                       tmp_path / "member1.pt")
    committee = write_committee_file(tmp_path / "committee.json", [model_file, other])
    start = tmp_path / "ethanol.xyz"
    ase.io.write(start, ethanol())
    explore = {"structures": [str(start)], "temperatures_K": [300.0, 500.0], "runs": 3,
               "md": {"steps": 20, "save_every": 5}}
    rounds = {}
    for name, md in (("single", {}), ("batched", {"batch": 2})):
        settings = ActiveLearningSettings.model_validate(
            {"explore": {**explore, "md": {**explore["md"], **md}}})
        rounds[name] = explore_round(settings, tmp_path / name, str(committee), 0, None)
    single, batched = rounds["single"], rounds["batched"]
    assert [r["name"] for r in single["runs"]] == [r["name"] for r in batched["runs"]]
    assert len(single["runs"]) == 6 and single["n_stable"] == batched["n_stable"]
    for a, b in zip(single["runs"], batched["runs"]):
        assert {k: v for k, v in a.items() if k not in ("wall_s", "observed")} == \
               {k: v for k, v in b.items() if k not in ("wall_s", "observed")}
        assert a["observed"]["uncertainty"]["checks"] == b["observed"]["uncertainty"]["checks"]
    assert single["spread"]["n_frames"] == batched["spread"]["n_frames"]
    assert np.allclose(single["spread"]["values"], batched["spread"]["values"], atol=1e-4)
