"""Cheap sampling for pre-training: seeds, FF MD, normal modes, random displacements, run and CLI."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import yaml
from ase import Atoms, units
from ase.build import molecule

from ffpt import teachers
from ffpt.cli import main
from ffpt.data import DataError, read_frames
from ffpt.sampling import (
    SamplingConfig,
    from_combustion,
    from_file,
    from_smiles,
    md_frames,
    normal_mode_frames,
    normal_modes,
    random_frames,
    sample,
)
from ffpt.sampling import Seed, split_molecules
from ffpt.sampling import run as run_module
from ffpt.teachers import Label, Teacher, TeacherInfo
from ffpt.sampling.labelling import draw_frames


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def same_frames(a: list[Atoms], b: list[Atoms]) -> bool:
    return len(a) == len(b) and all(
        np.array_equal(x.positions, y.positions)
        and x.info["REF_energy"] == y.info["REF_energy"]
        and np.array_equal(x.arrays["REF_forces"], y.arrays["REF_forces"])
        for x, y in zip(a, b)
    )


@pytest.fixture
def combustion_dir(tmp_path):
    """A one-channel stand-in for the hydrogen-combustion data directory (HO2 -> H + O2)."""
    geometries = tmp_path / "h2c" / "geometries"
    geometries.mkdir(parents=True)
    table = {"_about": "test", "09": {"reaction": "HO2 -> H + O2", "multiplicity": 2, "natoms": 3}}
    (tmp_path / "h2c" / "reactions.json").write_text(json.dumps(table))
    h_positions = {"reactant": [-0.25, 0.93, 0.0], "TS": [-0.5, 1.9, 0.0], "product": [-1.0, 3.0, 0.0]}
    for kind, h in h_positions.items():
        text = f"3\nStep 1 E= -150.8 |G|= 0.001\nH {h[0]} {h[1]} {h[2]}\nO 0.0 0.0 0.0\nO 1.33 0.0 0.0\n"
        (geometries / f"{kind}_09.xyz").write_text(text)
    return tmp_path / "h2c"


def test_every_sampler_is_deterministic_for_a_seed():
    teacher = teachers.get("mmff94")
    ethanol = from_smiles("CCO", seed=3).atoms
    md = lambda s: md_frames(ethanol, teacher, 1000.0, 5, rng(s), stride=3, equilibration=5)  # noqa: E731
    rnd = lambda s: random_frames(ethanol, teacher, 0.05, 5, rng(s))  # noqa: E731
    modes = normal_modes(ethanol, teacher)
    nm = lambda s: normal_mode_frames(modes, teacher, 500.0, 5, rng(s))  # noqa: E731
    for sampler in (md, rnd, nm):
        assert same_frames(sampler(1), sampler(1))
        assert not same_frames(sampler(1), sampler(2))
    assert np.array_equal(from_smiles("CCO", seed=3).atoms.positions, ethanol.positions)
    assert not np.array_equal(from_smiles("CCO", seed=4).atoms.positions, ethanol.positions)


def test_sampled_frames_carry_the_teachers_labels_and_provenance():
    teacher = teachers.get("uff")
    seed = from_smiles("CCO").atoms
    frames = md_frames(seed, teacher, 300.0, 3, rng(), stride=2, equilibration=0)
    frames += random_frames(seed, teacher, 0.1, 3, rng())
    frames += normal_mode_frames(normal_modes(seed, teacher), teacher, 300.0, 3, rng())
    bound = teacher.with_topology(seed)  # sampling keeps the seed's bonds
    for frame in frames:
        label = bound.label(frame)
        assert frame.info["REF_energy"] == pytest.approx(label.energy, abs=1e-10)
        np.testing.assert_allclose(frame.arrays["REF_forces"], label.forces, atol=1e-10)
        assert frame.info["teacher"] == "uff" and frame.info["seed_name"] == "CCO"
        assert frame.info["level_of_theory"].startswith("UFF")
    assert [f.info["config_type"] for f in frames[::3]] == ["md_T300", "random_s0.1", "nm_T300"]
    assert len({tuple(f.positions.ravel()) for f in frames}) == len(frames)


def test_normal_mode_sampling_follows_equipartition():
    teacher = teachers.get("mmff94")
    modes = normal_modes(from_smiles("CCO", seed=1).atoms, teacher)
    assert len(modes.curvatures) == 3 * 9 - 6 and np.all(modes.wavenumbers > 100)
    assert 3000 < modes.wavenumbers.max() < 4000  # O-H stretch region
    e0 = teacher.label(modes.minimum).energy
    temperature = 1.0
    frames = normal_mode_frames(modes, teacher, temperature, 2000, rng(7))
    excess = np.array([f.info["REF_energy"] for f in frames]) - e0
    # classical harmonic oscillators: <E - E0> = k_B T / 2 per mode
    assert excess.mean() / (units.kB * temperature) == pytest.approx(len(modes.curvatures) / 2, rel=0.03)


def test_normal_modes_are_found_per_molecule_without_rigid_motions():
    teacher = teachers.get("uff")
    co2 = normal_modes(molecule("CO2"), teacher)
    assert len(co2.curvatures) == 4  # linear: 3N - 5
    pair = molecule("H2O") + Atoms("OH", positions=[[8.0, 0, 0], [8.97, 0, 0]])
    modes = normal_modes(pair, teacher)
    assert len(modes.curvatures) == 3 + 1  # per molecule, no intermolecular coordinates
    masses = modes.minimum.get_masses()
    for d in modes.displacements:  # no net translation of either molecule
        np.testing.assert_allclose((masses[:3, None] * d[:3]).sum(0), 0, atol=1e-10)
        np.testing.assert_allclose((masses[3:, None] * d[3:]).sum(0), 0, atol=1e-10)


def test_random_displacements_have_the_requested_width():
    seed = from_smiles("CCO").atoms
    frames = random_frames(seed, teachers.get("uff"), 0.07, 200, rng(3))
    steps = np.array([f.positions - seed.positions for f in frames])
    assert steps.mean() == pytest.approx(0.0, abs=0.005)
    assert steps.std() == pytest.approx(0.07, rel=0.05)


def test_displaced_geometries_never_overlap():
    water = molecule("H2O")
    frames = random_frames(water, teachers.get("uff"), 0.15, 300, rng(1))
    hh = np.array([f.get_distance(1, 2) for f in frames])
    assert len(frames) == 300 and hh.min() >= 0.5 * 2 * 0.31  # H...H kept >= half the covalent sum
    unrestricted = random_frames(water, teachers.get("uff"), 0.15, 300, rng(1), overlap=0.0)
    assert min(f.get_distance(0, 1) for f in unrestricted) < 0.5 * (0.31 + 0.66)  # rejection did real work
    # a seed already closer than the limit (the O2 "reactant" of channel 06a is at 0.50 A) is sampled
    squeezed = Atoms("O2", positions=[[0, 0, 0], [0, 0, 0.50]])
    squeezed.info["seed_name"] = "reactant_06a"
    frames = random_frames(squeezed, teachers.get("uff"), 0.1, 100, rng(1))
    assert min(f.get_distance(0, 1) for f in frames) >= 0.75 * 0.50
    collapse = lambda: np.zeros((2, 3))  # noqa: E731  (a sampler that always overlaps)
    with pytest.raises(RuntimeError, match="reactant_06a: 201 draws put atoms closer than 0.5 x covalent radii"):
        draw_frames(squeezed, collapse, 2, lambda positions: squeezed, max_tries=100)


class Spring(Teacher):
    """Analytic test teacher: E = k/2 |r_0 - r_1|^2 (eV), a spring of zero rest length between atoms 0 and 1."""

    k = 5.0  # eV/A^2

    @property
    def info(self) -> TeacherInfo:
        return TeacherInfo(name="spring", level="harmonic spring, zero rest length", version="test")

    def compute(self, atoms: Atoms) -> Label:
        d = atoms.positions[0] - atoms.positions[1]
        forces = np.zeros((len(atoms), 3))
        forces[0], forces[1] = -self.k * d, self.k * d
        return Label(energy=0.5 * self.k * d @ d, forces=forces)


def test_md_skips_frames_where_atoms_overlap():
    seed = Atoms("H2", positions=[[0, 0, 0], [0.74, 0, 0]])  # the spring pulls the atoms through each other
    limit = 0.5 * 2 * 0.31
    free = md_frames(seed, Spring(), 300.0, 100, rng(2), stride=1, equilibration=0, overlap=0.0)
    assert sum(f.get_distance(0, 1) < limit for f in free) > 10
    kept = md_frames(seed, Spring(), 300.0, 100, rng(2), stride=1, equilibration=0)
    assert len(kept) == 100 and min(f.get_distance(0, 1) for f in kept) >= limit
    for frame in kept:  # labels of any teacher, here the analytic one, are those of the recorded geometry
        assert frame.info["REF_energy"] == pytest.approx(Spring().label(frame).energy)
        assert frame.info["teacher"] == "spring"


def test_seeds_of_several_molecules_are_split(combustion_dir):
    product, = from_combustion(combustion_dir, kinds=["product"], topology="self")  # H + O2
    assert split_molecules(product)[0].name == "product_09/mol0"
    parts = split_molecules(product)
    assert [p.atoms.get_chemical_formula() for p in parts] == ["O2"]  # the lone H is dropped
    assert "spin" not in parts[0].atoms.info  # the channel's doublet belongs to the whole frame
    kept, = from_combustion(combustion_dir, kinds=["product"], topology="reactant")
    assert split_molecules(kept) == [kept]  # reactant (HO2) bonding: one molecule, unchanged
    pair = molecule("H2O") + Atoms("OH", positions=[[5, 0, 0], [5.97, 0, 0]])
    pair.info["seed_name"] = "pair"
    names = [p.name for p in split_molecules(Seed("pair", pair))]
    assert names == ["pair/mol0", "pair/mol1"]


def test_md_keeps_the_seed_bonding_at_high_temperature():
    teacher = teachers.get("uff")
    seed = from_smiles("O").atoms
    frames = md_frames(seed, teacher, 3000.0, 20, rng(), stride=5, equilibration=20)
    for frame in frames:  # every label uses the seed topology, whatever the instantaneous distances
        np.testing.assert_allclose(frame.info["REF_energy"], teacher.with_topology(seed).label(frame).energy)
    lengths = np.array([[f.get_distance(0, 1), f.get_distance(0, 2)] for f in frames])
    assert np.all(lengths < 1.6) and lengths.std() > 0.01


def test_seeds_from_a_periodic_box_are_its_molecules(tmp_path):
    import ase.io

    box = Atoms(cell=[6.0, 6.0, 6.0], pbc=True)
    for k, o in enumerate([(0.2, 5.8, 3.0), (3.0, 3.0, 3.0), (5.9, 1.0, 0.1)]):
        w = molecule("H2O")
        w.rotate(40 * k, "x")
        w.translate(o)
        box += w
    box.wrap()
    path = tmp_path / "box.extxyz"
    ase.io.write(path, box)
    seeds = from_file(path)
    assert [s.name for s in seeds] == ["box/mol0", "box/mol1", "box/mol2"]
    for s in seeds:
        assert s.atoms.get_chemical_formula() == "H2O" and not s.atoms.pbc.any()
        assert s.atoms.get_distance(0, 1) == pytest.approx(molecule("H2O").get_distance(0, 1))
    assert len(from_file(path, max_molecules=2)) == 2
    assert len(from_file(path, isolate=False)) == 1
    with pytest.raises(DataError, match="missing.xyz: seed file not found"):
        from_file(tmp_path / "missing.xyz")


def test_combustion_seeds_carry_spin_and_reference_bonding(combustion_dir):
    seeds = from_combustion(combustion_dir, topology="reactant")
    assert [s.name for s in seeds] == ["reactant_09", "TS_09", "product_09"]
    assert all(s.atoms.info["spin"] == 2 and s.atoms.info["charge"] == 0 for s in seeds)
    product = seeds[2]
    assert product.reference.get_distance(0, 1) < 1.0  # bonded H in the reference
    teacher = teachers.get("uff")
    frames = random_frames(product.atoms, teacher, 0.01, 2, rng(), reference=product.reference)
    assert np.linalg.norm(frames[0].arrays["REF_forces"][0]) > 0.1  # H keeps its O-H term
    own = from_combustion(combustion_dir, channels=["09"], kinds=["product"])[0]
    free = random_frames(own.atoms, teacher, 0.01, 2, rng(), reference=own.reference)
    assert not free[0].arrays["REF_forces"][0].any()  # own bonding: H is a lone atom
    with pytest.raises(DataError, match="no channel '42'"):
        from_combustion(combustion_dir, channels=["42"])


def small_config(tmp_path, **changes) -> SamplingConfig:
    values = {
        "seeds": [{"smiles": "O"}, {"smiles": "CCO"}],
        "out": str(tmp_path / "out.extxyz"),
        "teacher": "uff",
        "seed": 11,
        "md": {"temperatures": [300, 1000], "frames": 3, "stride": 2, "equilibration": 4},
        "normal_modes": {"temperatures": [300], "frames": 4},
        "random": {"sigmas": [0.05], "frames": 2},
    }
    values.update(changes)
    return SamplingConfig.model_validate(values)


def test_sample_writes_all_frames_and_its_resolved_config(tmp_path, monkeypatch):
    config = small_config(tmp_path)
    out = sample(config, progress=False)
    frames = read_frames(out)
    assert len(frames) == 2 * (2 * 3 + 4 + 2)
    assert [f.info["seed_name"] for f in frames].count("CCO") == 12
    saved = yaml.safe_load(run_module.config_path(out).read_text())
    assert SamplingConfig.model_validate(saved) == config
    assert not out.with_name(out.name + ".parts").exists()
    monkeypatch.setattr(run_module, "_run_task", lambda *a: pytest.fail("a finished run must not be redone"))
    assert sample(config, progress=False) == out


def test_sample_resumes_after_a_kill_with_identical_output(tmp_path, monkeypatch):
    reference = read_frames(sample(small_config(tmp_path / "a"), progress=False))
    original = run_module._run_task
    calls = []

    def dies_after_three(task, *args):
        if len(calls) == 3:
            raise KeyboardInterrupt  # a kill in the middle of the run
        calls.append(task.id)
        return original(task, *args)

    monkeypatch.setattr(run_module, "_run_task", dies_after_three)
    config = small_config(tmp_path / "b")
    with pytest.raises(KeyboardInterrupt):
        sample(config, progress=False)
    assert len(list((tmp_path / "b" / "out.extxyz.parts").glob("*.extxyz"))) == 3
    finished = list(calls)
    calls.clear()
    monkeypatch.setattr(run_module, "_run_task", lambda task, *a: calls.append(task.id) or original(task, *a))
    resumed = read_frames(sample(config, progress=False))
    assert not set(finished) & set(calls)  # finished tasks are not redone
    assert same_frames(reference, resumed)
    with pytest.raises(DataError, match="different sampling config"):
        (tmp_path / "b" / "out.extxyz.parts").mkdir()
        (tmp_path / "b" / "out.extxyz.parts" / "config.json").write_text("{}")
        sample(small_config(tmp_path / "b", seed=12), progress=False)


def test_parallel_workers_give_the_same_output(tmp_path):
    one = read_frames(sample(small_config(tmp_path / "one"), progress=False))
    two = read_frames(sample(small_config(tmp_path / "two"), progress=False, workers=2))
    assert same_frames(one, two)


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ValueError, match="md.temperatures"):
        small_config(tmp_path, md={"temperatures": [-5]})
    with pytest.raises(ValueError, match="seeds.0.smile"):
        small_config(tmp_path, seeds=[{"smile": "O"}])
    with pytest.raises(ValueError, match="exactly one of smiles, file, combustion"):
        small_config(tmp_path, seeds=[{"smiles": "O", "file": "x.xyz"}])


def test_cli_with_flags_and_with_yaml(tmp_path, capsys):
    out = tmp_path / "flags.extxyz"
    code = main([
        "sample", "--seeds", "O", "[OH]", "--out", str(out), "--teacher", "uff", "--md-frames", "2",
        "--md-temperatures", "500", "--nm-frames", "0", "--random-sigmas", "0.1", "--random-frames", "1",
        "--no-progress",
    ])
    assert code == 0
    frames = read_frames(out)
    assert len(frames) == 2 * (2 + 1)
    assert frames[-1].info["spin"] == 2 and frames[-1].info["seed_name"] == "[OH]"
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"seeds": [{"smiles": "O"}], "out": str(tmp_path / "yaml.extxyz"),
                                      "md": None, "normal_modes": None, "random": {"sigmas": [0.02], "frames": 3}}))
    assert main(["sample", str(config), "--random-frames", "4", "--no-progress"]) == 0
    assert len(read_frames(tmp_path / "yaml.extxyz")) == 4
    config.write_text(yaml.safe_dump({"seeds": [{"smiles": "O"}], "out": "x.extxyz", "md": {"temprature": [1]}}))
    assert main(["sample", str(config), "--no-progress"]) == 2
    assert "md.temprature" in capsys.readouterr().err
    assert main(["sample", "--seeds", "[O][O]", "--teacher", "mmff94", "--out", str(tmp_path / "o2.extxyz"), "--no-progress"]) == 2
    assert "molecule O2 (atoms [0, 1]" in capsys.readouterr().err  # untypable seed refused, named


def test_lone_atoms_are_skipped_with_a_note_and_never_sampled(tmp_path, capsys):
    box = molecule("H2O")
    box += Atoms("Ar", positions=[[6.0, 0.0, 0.0]])
    box.write(tmp_path / "wet_argon.xyz")
    (tmp_path / "argon.xyz").write_text("1\n\nAr 0.0 0.0 0.0\n")
    seeds = [{"smiles": "[Ar]"}, {"file": str(tmp_path / "argon.xyz")}, {"file": str(tmp_path / "wet_argon.xyz")}]
    config = small_config(tmp_path, seeds=seeds, md={"temperatures": [300], "frames": 1, "stride": 2, "equilibration": 2},
                          normal_modes=None, random={"sigmas": [0.05], "frames": 1})
    frames = read_frames(sample(config, progress=False))  # reading checks every value is finite
    assert [f.info["seed_name"] for f in frames] == ["wet_argon/mol0"] * 2
    assert [len(f) for f in frames] == [3, 3]
    err = capsys.readouterr().err.splitlines()
    assert "ffpt sample: seed [Ar]: skipping its lone atom Ar (one atom has nothing to sample)" in err
    assert "ffpt sample: seed argon: skipping its lone atom Ar (one atom has nothing to sample)" in err
    assert "ffpt sample: seed wet_argon: skipping 1 lone atom(s) (one atom has nothing to sample)" in err

    only = small_config(tmp_path / "only", seeds=seeds[:2])
    with pytest.raises(DataError, match=r"seed\(s\) \[Ar\], argon: nothing to sample, only lone atoms"):
        sample(only, progress=False)
    assert not (tmp_path / "only").exists()


def test_a_non_finite_frame_is_refused_naming_seed_and_frame(tmp_path, monkeypatch):
    def broken(task, seed, *args):
        frames = [seed.atoms.copy(), seed.atoms.copy()]
        for frame in frames:
            frame.info["REF_energy"] = 0.0
            frame.arrays["REF_forces"] = np.zeros((len(frame), 3))
        frames[1].positions[1, 2] = np.nan
        return frames

    monkeypatch.setattr(run_module, "_run_task", broken)
    config = small_config(tmp_path, seeds=[{"smiles": "O"}], md=None, normal_modes=None)
    with pytest.raises(DataError, match=r"seed O, random 0.05, frame 1, atom 1: non-finite position"):
        sample(config, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no output, parts folder or config left


def test_a_sample_run_refused_on_bad_input_leaves_nothing_behind(tmp_path, capsys):
    out = tmp_path / "o2.extxyz"
    args = ["sample", "--seeds", "O", "[O][O]", "--teacher", "mmff94", "--out", str(out), "--md-frames", "0",
            "--nm-frames", "0", "--random-frames", "1", "--random-sigmas", "0.05", "--no-progress"]
    assert main(args) == 2
    assert "molecule O2" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # neither o2.extxyz.parts/ nor o2.config.yaml nor a lock


def test_sample_outputs_follow_the_umask(tmp_path):
    config = small_config(tmp_path, seeds=[{"smiles": "O"}], md=None, normal_modes=None)
    saved = os.umask(0o022)
    try:
        out = sample(config, progress=False)
    finally:
        os.umask(saved)
    written = sorted(tmp_path.iterdir())
    assert written == sorted([out, run_module.config_path(out)])
    assert [oct(p.stat().st_mode & 0o777) for p in written] == ["0o644", "0o644"]
