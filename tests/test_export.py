"""``ffpt export``: the compiled AOTInductor package reproduces the eager model; errors exit 2."""

import json

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import molecule

import ffpt
from ffpt.cli import main
from ffpt.models import NewtonNet, save_model
from ffpt.models.batched import PackageBatch, batch_evaluator
from ffpt.models.calculator import MLIPCalculator
from ffpt.models.export import compare
from ffpt.models.exported import ExportedCalculator
from ffpt.models.model_file import ModelFileError
from ffpt.models.potential import ModelInputError

from helpers_physics import energy_forces


def tiny_model():
    """The smallest NewtonNet that exercises everything (references, scale, the ZBL prior with a range
    per element and an exclusive core): compiles in about a minute."""
    torch.manual_seed(0)
    model = NewtonNet(elements=[1, 6, 8], cutoff=4.0, n_features=8, n_layers=1, n_basis=8, zbl=True,
                      zbl_radius_scale={"H": 1.0}, zbl_exclusive_core=True)
    model.references.copy_(torch.tensor([-13.6, -1029.0, -2041.0]))
    model.energy_scale.fill_(0.7)
    return model


def water_box(n=2, spacing=3.1, seed=0):
    """n^3 water molecules in a periodic cubic box (A), rattled."""
    box = Atoms(cell=[n * spacing] * 3, pbc=True)
    for idx in np.ndindex(n, n, n):
        w = molecule("H2O")
        w.positions += spacing * (np.array(idx) + 0.5)
        box += w
    box.rattle(0.05, seed=seed)
    return box


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(model, package path): the tiny model written to a file and exported by the verb (float32)."""
    root = tmp_path_factory.mktemp("export")
    model = tiny_model()
    save_model(model, root / "model.pt")
    package = root / "model.pt2"
    assert main(["export", str(root / "model.pt"), "--out", str(package)]) == 0
    return model, package


def _agree(eager, compiled, atoms, stress=False):
    e0, f0 = energy_forces(eager, atoms)
    e1, f1 = energy_forces(compiled, atoms)
    tol = 500 * np.finfo(np.float32).eps
    assert abs(e1 - e0) <= tol * max(1.0, abs(e0)), (e0, e1)
    assert np.abs(f1 - f0).max() <= tol * max(1.0, np.abs(f0).max())
    assert np.abs(f0).max() > 1e-3  # forces not trivially zero
    if stress:
        s0, s1 = eager.get_stress(atoms), compiled.get_stress(atoms)
        assert np.abs(s0).max() > 1e-6
        np.testing.assert_allclose(s1, s0, atol=tol * np.abs(s0).max())


@pytest.mark.slow
def test_package_reproduces_eager_on_two_sizes_and_a_periodic_box(exported, ethanol):
    model, package = exported
    compiled = ffpt.load_calculator(package)
    assert isinstance(compiled, ExportedCalculator)
    eager = MLIPCalculator(model)
    dimer = ethanol.copy() + ethanol.copy()
    dimer.positions[len(ethanol):] += [3.0, 0.5, 0.0]  # within the cutoff: more edges per atom
    squeezed = ethanol.copy()  # an O-H pushed into the prior's range, where the network fades out
    o, h = 2, 3  # the hydroxyl O-H
    squeezed.positions[h] = squeezed.positions[o] + 0.6 * (squeezed.positions[h] - squeezed.positions[o]) / squeezed.get_distance(o, h)
    sizes = []
    _agree(eager, compiled, squeezed)
    for atoms in (ethanol, dimer, water_box()):
        sizes.append((len(atoms), len(compiled.neighbors(atoms.positions, atoms.cell.array, atoms.pbc)[0][0])))
        _agree(eager, compiled, atoms, stress=bool(atoms.pbc.all()))
    assert len({n for n, _ in sizes}) == 3 and len({e for _, e in sizes}) == 3  # atom and edge counts differ
    assert compiled.info["elements"] == [1, 6, 8] and compiled.info["cutoff"] == 4.0


@pytest.mark.slow
def test_package_takes_a_molecule_dissociated_beyond_the_cutoff(exported):
    """No neighbour pair at all (two fragments 6 A apart, cutoff 4 A; what a dissociation in reactive MD
    produces): the package gives the eager model's energy and forces (zero)."""
    model, package = exported
    compiled, eager = ffpt.load_calculator(package), MLIPCalculator(model)
    apart = Atoms("OH", positions=[[0, 0, 0], [0, 0, 6.0]])
    assert len(compiled.neighbors(apart.positions, apart.cell.array, apart.pbc)[0][0]) == 0
    e0, f0 = energy_forces(eager, apart)
    e1, f1 = energy_forces(compiled, apart)
    assert e1 == pytest.approx(e0, abs=1e-4) and abs(e0) > 1e-3  # the isolated atoms' energies
    np.testing.assert_allclose(f1, f0, atol=1e-6)
    assert np.abs(f0).max() < 1e-6


@pytest.mark.slow
def test_package_checks_frames_like_the_eager_calculator(exported):
    _, package = exported
    calc = ffpt.load_calculator(package)
    triplet = molecule("O2")
    triplet.info["spin"] = 5  # not the default; the model has no spin input
    triplet.calc = calc
    with pytest.raises(ModelInputError, match="spin multiplicity 5"):
        triplet.get_potential_energy()
    neon = Atoms("NeH", positions=[[0, 0, 0], [0, 0, 1.0]])
    neon.calc = calc
    with pytest.raises(KeyError, match="Ne"):
        neon.get_potential_energy()
    lone = Atoms("H")
    lone.calc = calc
    with pytest.raises(ModelInputError, match="at least 2 atoms"):
        lone.get_potential_energy()


@pytest.mark.slow
def test_md_runs_an_exported_model(exported, tmp_path, ethanol, capsys):
    _, package = exported
    structure = tmp_path / "ethanol.xyz"
    ethanol.write(structure)
    assert main(["md", "--model", str(package), "--structure", str(structure), "--steps", "5",
                 "--out", str(tmp_path / "md"), "--no-progress", "--temperature", "300"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["stable"] is True and summary["simulated_fs"] > 0


def test_export_of_a_corrupted_model_exits_2(tmp_path, capsys):
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"not a torch file at all")
    assert main(["export", str(bad), "--out", str(tmp_path / "model.pt2")]) == 2
    assert str(bad) in capsys.readouterr().err
    assert not (tmp_path / "model.pt2").exists()
    save_model(tiny_model(), tmp_path / "good.pt")
    assert main(["export", str(tmp_path / "good.pt"), "--out", str(tmp_path / "model.zip")]) == 2
    assert ".pt2" in capsys.readouterr().err


def test_load_calculator_refuses_a_damaged_package(tmp_path):
    damaged = tmp_path / "model.pt2"
    damaged.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ModelFileError, match="model.pt2"):
        ffpt.load_calculator(damaged)
    with pytest.raises(ModelFileError, match="no such"):
        ffpt.load_calculator(tmp_path / "missing.pt2")


def test_compare_flags_differences_beyond_round_off():
    energy, forces, stress = torch.tensor([-100.0]), torch.ones(4, 3), torch.eye(3)
    same = (energy * (1 + 1e-7), forces, stress)
    assert compare((energy, forces, stress), same, torch.float32, periodic=True) is None
    off = (energy, forces + 1e-2, stress)
    assert "forces" in compare((energy, forces, stress), off, torch.float32, periodic=True)
    assert "stress" in compare((energy, forces, stress), (energy, forces, stress * 2), torch.float32, periodic=True)
    assert compare((energy, forces, stress), (energy, forces, stress * np.nan), torch.float32, periodic=False) is None


def test_compare_allows_the_float32_round_off_of_the_eager_model_itself():
    """Forces of thousands of eV/A summed from cancelling terms lose digits in float32: the package may
    differ from eager float32 by as much as eager float32 differs from float64 (times a margin), no more."""
    energy, stress = torch.tensor([-100.0]), torch.eye(3)
    forces = torch.full((4, 3), 8000.0)
    exact = (energy, forces + 0.5, stress)  # eager float32 is 0.5 eV/A off the float64 answer
    near = (energy, forces + 0.6, stress)  # beyond 500 eps x 8000 = 0.48, within 10 x 0.5
    assert "forces" in compare((energy, forces, stress), near, torch.float32, periodic=True)
    assert compare((energy, forces, stress), near, torch.float32, periodic=True, exact=exact) is None
    far = (energy, forces + 6.0, stress)
    assert "forces" in compare((energy, forces, stress), far, torch.float32, periodic=True, exact=exact)
    broken = (energy, forces * np.nan, stress)
    assert "forces" in compare((energy, forces, stress), near, torch.float32, periodic=True, exact=broken)


def test_md_compile_flag_reaches_the_model(tmp_path, ethanol, monkeypatch, capsys):
    """``--compile`` wraps the network in torch.compile (stubbed here: real code generation takes minutes);
    a teacher cannot be compiled (exit 2)."""
    compiled = []
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: compiled.append(kw) or fn)
    save_model(tiny_model(), tmp_path / "model.pt")
    structure = tmp_path / "ethanol.xyz"
    ethanol.write(structure)
    assert main(["md", "--model", str(tmp_path / "model.pt"), "--compile", "--structure", str(structure),
                 "--steps", "2", "--out", str(tmp_path / "md"), "--no-progress"]) == 0
    assert compiled and compiled[0] == {"dynamic": True}
    assert main(["md", "--calculator", "mmff94", "--compile", "--structure", str(structure),
                 "--steps", "2", "--out", str(tmp_path / "md2"), "--no-progress"]) == 2
    assert "--compile applies to model files" in capsys.readouterr().err


@pytest.mark.slow
def test_eval_reads_an_exported_model_like_the_model_file(exported, tmp_path, ethanol, capsys):
    """``ffpt eval FILE.pt2 DATA`` gives the errors of ``ffpt eval MODEL.pt DATA`` within float32 round-off."""
    from ffpt.data.io import write_frames

    model, package = exported
    rng = np.random.default_rng(0)
    frames = []
    for _ in range(3):
        atoms = ethanol.copy()
        atoms.positions += rng.normal(0, 0.05, atoms.positions.shape)
        atoms.info["REF_energy"] = -1.0
        atoms.arrays["REF_forces"] = np.zeros((len(atoms), 3))
        frames.append(atoms)
    data = tmp_path / "frames.extxyz"
    write_frames(data, frames)
    reports = []
    for name in (package, package.with_suffix(".pt")):
        out = tmp_path / f"{name.suffix[1:]}.json"
        assert main(["eval", str(name), str(data), "--json", str(out)]) == 0
        reports.append(json.loads(out.read_text()))
    assert reports[0]["n_frames"] == 3
    assert reports[0]["forces_mae_mev_per_a"] == pytest.approx(reports[1]["forces_mae_mev_per_a"], rel=1e-4)
    assert reports[0]["energy_mae_mev_per_atom"] == pytest.approx(reports[1]["energy_mae_mev_per_atom"], rel=1e-4)


def _rattled(systems):
    for k, atoms in enumerate(systems):
        atoms.rattle(0.05, seed=k)
    return systems


@pytest.mark.slow
def test_package_evaluates_many_frames_in_one_call(exported, ethanol):
    """Molecules of different sizes and a periodic box in one package call (batched replicas: PackageBatch),
    or in calls of at most 30 neighbour pairs, give each frame's energy and forces of one call per frame
    (float32 round-off); a frame's result does not depend on its companions."""
    _, package = exported
    calc = ffpt.load_calculator(package)
    assert isinstance(batch_evaluator(calc), PackageBatch)
    systems = _rattled([ethanol.copy(), molecule("CH4"), water_box(), molecule("H2O"), ethanol.copy()])
    tol = 500 * np.finfo(np.float32).eps
    for max_edges in (None, 30):
        results = PackageBatch(calc, max_edges=max_edges).evaluate(systems)
        assert len(results) == len(systems)
        for atoms, result in zip(systems, results):
            energy, forces = energy_forces(calc, atoms)
            assert abs(result["energy"] - energy) <= tol * max(1.0, abs(energy))
            assert np.abs(result["forces"] - forces).max() <= tol * max(1.0, np.abs(forces).max())
            assert np.abs(forces).max() > 1e-3


@pytest.mark.slow
def test_batched_md_replicas_run_the_package_like_single_runs(exported, tmp_path, ethanol):
    """Three Langevin replicas of the package in one call per step follow their single runs (same seeds):
    the same random streams and frames, positions within float32 round-off after 20 steps."""
    from ffpt.jobs.md import CalculatorSpec, run_batch
    from ffpt.simulate.config import MDConfig

    _, package = exported
    config = MDConfig(steps=20, timestep_fs=0.5, temperature_K=300, ensemble="langevin", save_every=10)
    single = run_batch(ethanol, CalculatorSpec(str(package)), [0, 1, 2], config, tmp_path / "single", progress=False)
    batched = run_batch(ethanol, CalculatorSpec(str(package)), [0, 1, 2], config.model_copy(update={"batch": 3}),
                        tmp_path / "batched", progress=False)
    for seed, a, b in zip([0, 1, 2], single.results, batched.results):
        x, y = (json.loads((tmp_path / kind / f"seed_{seed}" / "checkpoint.json").read_text())
                for kind in ("single", "batched"))
        assert a.stable and b.stable and x["step"] == y["step"] == 20 and x["rng"] == y["rng"]
        assert np.abs(np.subtract(x["positions"], y["positions"])).max() < 1e-5
    assert np.abs(np.subtract(*(json.loads((tmp_path / "batched" / f"seed_{s}" / "checkpoint.json").read_text())
                                ["positions"] for s in (0, 1)))).max() > 1e-3  # the replicas differ


class _FormatOnePackage:
    """A stand-in for a format 1 package (one frame: no batch input, cell (3, 3), spin (1,)): the eager
    model behind the old call signature, so the calculator's handling of old packages is tested without
    compiling one with an old ffpt."""

    def __init__(self, model):
        self.model = model

    def __call__(self, positions, species, edge_index, shifts, cell, spin):
        from ffpt.models.graph import AtomicGraph

        graph = AtomicGraph(positions=positions, species=species, batch=torch.zeros_like(species),
                            edge_index=edge_index, shifts=shifts, cell=cell[None], n_atoms=spin.new_ones(1), spin=spin)
        pred = self.model(graph, forces=True, stress=True)
        return pred.energy, pred.forces, pred.stress[0]


def test_a_format_one_package_still_serves_one_frame_per_call(ethanol):
    """Packages exported before batching (format 1) give the model's energy, forces and stress; batched
    replicas call them one frame at a time."""
    from ffpt.models.batched import OneByOne

    model = tiny_model()
    info = {"format": "ffpt-export", "format_version": 1, "architecture": "newtonnet", "elements": [1, 6, 8],
            "cutoff": 4.0, "dtype": "float32", "max_spin": 0,
            "inputs": ["positions", "species", "edge_index", "shifts", "cell", "spin"]}
    calc = ExportedCalculator("old.pt2", package=(_FormatOnePackage(model), info))
    assert not calc.batched
    box = water_box()
    e0, f0 = energy_forces(MLIPCalculator(model), ethanol)
    e1, f1 = energy_forces(calc, ethanol)
    assert e1 == pytest.approx(e0, rel=1e-6) and np.abs(f1 - f0).max() < 1e-5
    np.testing.assert_allclose(calc.get_stress(box), MLIPCalculator(model).get_stress(box), atol=1e-6)
    with pytest.warns(UserWarning, match="once per replica"):
        assert isinstance(batch_evaluator(calc), OneByOne)
