"""Well-tempered metadynamics: bias forces, hill heights, HILLS restart, resume, a known FES, the CLI."""

import json

import numpy as np
import pytest
from ase import Atoms, units
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.lj import LennardJones

from ffpt.analysis.fes import fes_from_hills, metad_log_weights, reweighted_fes
from ffpt.simulate.cvs import Coordination, Distance, Position
from ffpt.simulate.hills import read_hills
from ffpt.simulate.metad import MetadParameters, MetadynamicsCalculator, Wall, read_colvar, run_metadynamics

T = 300.0
KT = units.kB * T


class DoubleWell(Calculator):
    """One particle: U = barrier ((x/a)^2 - 1)^2 + k (y^2 + z^2) / 2 (eV, A)."""

    implemented_properties = ["energy", "forces"]

    def __init__(self, barrier, a=1.0, k=1.0):
        super().__init__()
        self.barrier, self.a, self.k = barrier, a, k

    def free_energy(self, x):
        return self.barrier * ((x / self.a) ** 2 - 1) ** 2

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        x, y, z = self.atoms.positions[0]
        u = (x / self.a) ** 2 - 1
        self.results = {
            "energy": self.barrier * u * u + 0.5 * self.k * (y * y + z * z),
            "forces": np.array([[-4 * self.barrier * u * x / self.a**2, -self.k * y, -self.k * z]]),
        }


def particle():
    atoms = Atoms("H", positions=[[-1.0, 0.0, 0.0]])
    atoms.set_masses([4.0])
    return atoms


def cluster():
    pos = [[0, 0, 0], [1.1, 0.1, 0], [0.2, 1.2, 0.1], [1.3, 1.0, 0.9], [-0.6, 0.4, 1.1]]
    return Atoms("OHHOH", positions=pos)


def cluster_metad(**kw):
    cvs = [Coordination(pairs=((0, 1), (0, 2), (3, 2)), r0=1.2, name="cn"), Distance(0, 3, name="d")]
    return MetadynamicsCalculator(LennardJones(sigma=1.0, epsilon=0.02, rc=10.0), cvs, sigma=[0.1, 0.15],
                                  height=0.05, pace=1, biasfactor=8.0, temperature=T, **kw)


def numerical_forces(atoms, h=1e-5):
    forces = np.zeros((len(atoms), 3))
    for i in range(len(atoms)):
        for k in range(3):
            energies = []
            for sign in (1, -1):
                atoms.positions[i, k] += sign * h
                energies.append(atoms.get_potential_energy())
                atoms.positions[i, k] -= sign * h
            forces[i, k] = -(energies[0] - energies[1]) / (2 * h)
    return forces


def test_bias_forces_equal_minus_gradient_of_bias_energy():
    atoms = cluster()
    walled = Wall(Distance(1, 4, name="wall"), at=1.0, kappa=0.7)  # active: d(1, 4) is about 2.0 A
    calc = cluster_metad(walls=[walled])
    rng = np.random.default_rng(3)
    for t in range(6):  # hills around (not on) the current point, so the bias has a slope
        trial = atoms.copy()
        trial.positions += rng.normal(scale=0.08, size=trial.positions.shape)
        calc.deposit(trial, time=float(t))
    atoms.calc = calc
    forces = atoms.get_forces()
    np.testing.assert_allclose(forces, numerical_forces(atoms), atol=1e-6)
    bias_energy, bias_forces = calc.bias(atoms)
    assert bias_energy > 1e-3 and calc.wall_energy > 1e-3  # both terms contribute
    base = LennardJones(sigma=1.0, epsilon=0.02, rc=10.0)
    a0 = atoms.copy()
    a0.calc = base
    wall_energy, wall_forces = walled.energy_and_forces(atoms)
    np.testing.assert_allclose(forces, a0.get_forces() + bias_forces + wall_forces, atol=1e-12)
    assert atoms.get_potential_energy() == pytest.approx(a0.get_potential_energy() + bias_energy + wall_energy)


def test_well_tempered_heights_decay_with_the_bias_already_deposited():
    atoms = cluster()
    calc = cluster_metad()
    w0, dT = 0.05, T * (8.0 - 1.0)
    h1 = calc.deposit(atoms, time=0.0)
    h2 = calc.deposit(atoms, time=1.0)
    h3 = calc.deposit(atoms, time=2.0)
    assert h1 == pytest.approx(w0)
    assert h2 == pytest.approx(w0 * np.exp(-h1 / (units.kB * dT)))
    assert h3 == pytest.approx(w0 * np.exp(-(h1 + h2) / (units.kB * dT)))
    assert calc.delta_t == pytest.approx(dT)


def test_hill_deposition_observer_deposits_every_pace_steps(tmp_path):
    from ffpt.dynamics.engine import Dynamics, Integrator
    from ffpt.simulate.metad import HillDeposition

    atoms = cluster()
    calc = cluster_metad()
    calc.pace = 4
    atoms.calc = calc
    integrator = Integrator("nve", timestep_fs=0.5, temperature_K=T, fix_com=False)
    dynamics = Dynamics(atoms, integrator, np.random.default_rng(0), [HillDeposition(tmp_path / "HILLS", calc)])
    dynamics.initialize()
    dynamics.run(10)
    assert dynamics.step == 10
    assert calc.hills.time.tolist() == [0.0, 2.0, 4.0]  # steps 0, 4, 8 of 0.5 fs
    assert len({tuple(c) for c in calc.hills.center}) == 3  # each at the configuration of its step
    assert read_hills(tmp_path / "HILLS", [1.0, 0.1]).time.tolist() == [0.0, 2.0, 4.0]


def test_restart_from_hills_file_continues_the_same_bias(tmp_path):
    path = tmp_path / "HILLS"
    atoms = cluster()
    calc = cluster_metad(hills_file=path)
    rng = np.random.default_rng(0)
    for t in range(5):
        trial = atoms.copy()
        trial.positions += rng.normal(scale=0.1, size=trial.positions.shape)
        calc.deposit(trial, time=10.0 * t)
    probe = atoms.copy()
    probe.positions += 0.03
    v_before, f_before = calc.bias(probe)
    restarted = cluster_metad(hills_file=path, restart=True)
    v_after, f_after = restarted.bias(probe)
    assert len(restarted.hills) == 5
    assert v_after == pytest.approx(v_before, rel=1e-8)
    np.testing.assert_allclose(f_after, f_before, rtol=1e-7, atol=1e-12)
    restarted.deposit(atoms, time=50.0)  # appends to the same file
    assert len(read_hills(path, [1.0, 0.1])) == 6
    with pytest.raises(FileExistsError, match="restart=True"):
        cluster_metad(hills_file=path)
    other = [Distance(0, 3, name="d2")]
    with pytest.raises(ValueError, match="2 CVs"):
        MetadynamicsCalculator(LennardJones(), other, [0.1], 0.05, 1, 8.0, T, path, restart=True)


def test_hills_file_uses_plumed_units(tmp_path):
    path = tmp_path / "HILLS"
    calc = cluster_metad(hills_file=path)
    calc.deposit(cluster(), time=2500.0)
    lines = path.read_text().splitlines()
    assert lines[0] == "#! FIELDS time cn d sigma_cn sigma_d height biasf"
    time, cn, d, s_cn, s_d, height, biasf = map(float, lines[-1].split())
    assert time == pytest.approx(2.5)  # ps
    assert d == pytest.approx(cluster().get_distance(0, 3) / 10)  # nm
    assert (s_cn, s_d) == pytest.approx((0.1, 0.015))
    assert height == pytest.approx(0.05 / (units.kJ / units.mol) * 8 / 7)  # kJ/mol times gamma/(gamma-1)
    assert biasf == 8.0


def run_double_well(tmp_path, steps, **overrides):
    settings = dict(steps=steps, temperature=T, sigma=(0.1,), height=0.05 * KT, pace=5, biasfactor=4.0,
                    timestep=10.0, friction=0.02, seed=0, colvar_stride=5, trajectory_stride=0,
                    checkpoint_every=steps)
    settings.update(overrides)
    calc = DoubleWell(barrier=4 * KT)
    result = run_metadynamics(particle(), calc, [Position(0, 0, name="x")], MetadParameters(**settings), tmp_path,
                              progress=False)
    return calc, result


@pytest.mark.slow
def test_double_well_free_energy_is_recovered_within_half_kT(tmp_path):
    """F = -gamma/(gamma-1) V: summed hills and reweighting both reproduce the analytic F(x)."""
    calc, result = run_double_well(tmp_path, steps=16000)
    hills = result.hills
    edge = np.sqrt(1 + np.sqrt(4.5 / 4))
    sampled = (-edge, edge)  # where F(x) <= 4.5 kT
    fes = fes_from_hills(hills, bins=59, ranges=[sampled])
    exact = calc.free_energy(fes.axes[0])
    # the best constant shift leaves at most half the range of the difference
    assert np.ptp(fes.values - exact) / 2 / KT < 0.5
    # without the gamma/(gamma-1) factor the barrier comes out 1 kT too low
    raw = -fes.values / hills.free_energy_factor()
    assert np.ptp(raw - raw.min() - exact) / 2 / KT > 0.5
    colvar = read_colvar(tmp_path / "COLVAR", [0.1])
    keep = colvar.time >= colvar.time[-1] / 4
    log_w = metad_log_weights(colvar.time[keep], colvar.bias[keep], hills, T, ranges=[(-2.5, 2.5)])
    reweighted = reweighted_fes(colvar.values[keep], log_w, T, ["x"], bins=12, ranges=[sampled])
    assert np.ptp(reweighted.values - calc.free_energy(reweighted.axes[0])) / 2 / KT < 0.5


def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path):
    overrides = dict(pace=5, checkpoint_every=100, trajectory_stride=20)
    _, full = run_double_well(tmp_path / "full", steps=300, **overrides)
    run_double_well(tmp_path / "cut", steps=200, **overrides)
    # a kill after the last checkpoint: a later hill, COLVAR row and a half-written line
    with open(tmp_path / "cut" / "HILLS", "a") as fh:
        fh.write("2.5 0.5 0.01 1.0 5\n2.51 0.3")
    with open(tmp_path / "cut" / "COLVAR", "a") as fh:
        fh.write("2.5 0.5 0.1 0\n")
    _, resumed = run_double_well(tmp_path / "cut", steps=300, **overrides)
    assert len(resumed.hills) == len(full.hills) == 61
    assert np.array_equal(resumed.hills.center, full.hills.center)  # bit-identical
    assert np.array_equal(resumed.hills.height, full.hills.height)
    assert (tmp_path / "cut" / "COLVAR").read_text() == (tmp_path / "full" / "COLVAR").read_text()
    assert read_hills(tmp_path / "cut" / "HILLS", [0.1]).time.tolist() == full.hills.time.tolist()


REACTIONS = {"09": {"reaction": "HO2 -> H + O2", "multiplicity": 2, "natoms": 3,
                    "cv": [["O1_H1"], ["O2_H1"]], "r0": [0.96, 1.84]}}
HO2 = "3\n\nO 0.7695 0.1080 0.0\nO -0.4917 -0.2662 0.0\nH 1.2866 -0.7171 0.0\n"


def test_cli_metad_writes_hills_fes_and_plots(tmp_path):
    from ffpt.cli import main

    (tmp_path / "reactions.json").write_text(json.dumps(REACTIONS))
    (tmp_path / "ho2.xyz").write_text(HO2)
    out = tmp_path / "run"
    args = ["metad", "--calculator", "gfn2", "--structure", str(tmp_path / "ho2.xyz"), "--channel", "09",
            "--reactions", str(tmp_path / "reactions.json"), "--steps", "60", "--pace", "10", "--temperature", "500",
            "--upper-wall", "O1_H1=3.0", "--out", str(out), "--no-progress"]
    assert main(args) == 0
    for name in ("HILLS", "COLVAR", "fes.dat", "fes.png", "species.png", "metad_config.yaml", "summary.json",
                 "trajectory.extxyz", "stability.json", "checkpoint.json"):
        assert (out / name).stat().st_size > 0, name
    hills = read_hills(out / "HILLS")
    assert hills.names == ("cn1", "cn2") and len(hills) == 7
    assert hills.center[0] == pytest.approx([0.5, 0.5], abs=0.05)  # HO2: both distances near r0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["outcome"] == "reactants" and summary["final_species"] == {"HO2": 1}
    assert summary["ends_unphysical"] is False
    change = summary["fes_convergence"]  # 5 estimates at 6, 12, ..., 30 fs hold the hills laid every 5 fs up to then
    assert change["time_fs"] == pytest.approx([10.0, 15.0, 20.0, 30.0]) and change["last_interval_fs"] == pytest.approx(10.0)
    assert change["tolerance_kj_mol"] == 2.0 and change["converged"] == (change["rms_change_kj_mol"][-1] <= 2.0)
    assert all(m >= r > 0 for m, r in zip(change["max_change_kj_mol"], change["rms_change_kj_mol"]))
    assert summary["stability"] == {"stable": True, "simulated_fs": 30.0, "failed_at_fs": None, "reason": None,
                                    "monitor": None}
    assert main(args[:-3] + ["--steps", "80", "--pace", "20", "--out", str(out), "--no-progress"]) == 2  # changed


def test_cli_config_errors_name_the_key(tmp_path, capsys):
    from ffpt.cli import main

    config = tmp_path / "metad.yaml"
    config.write_text("calculator: gfn2\nheigth: 2.0\n")
    assert main(["metad", "--config", str(config), "--out", str(tmp_path / "o")]) == 2
    assert "heigth" in capsys.readouterr().err
    from ffpt.config import load_config
    from ffpt.jobs.metad import MetadConfig

    assert load_config(MetadConfig, flags={"channel": 1, "reactions": "r.json"}).channel == "01"  # YAML reads 01 as 1
    config.write_text("calculator: gfn2\ncv: ['O1_H1']\n")
    assert main(["metad", "--config", str(config), "--out", str(tmp_path / "o")]) == 2
    assert "r0" in capsys.readouterr().err



def two_well_fes():
    """(axis, x, y, wells kcal/mol, FES in eV at 1 ps) on [0, 1]^2: the reactant's CV point (about
    (0.5, 0.5)) 10 kcal/mol below the product's (0, 0), a saddle between."""
    from ffpt.analysis.fes import FreeEnergySurface

    axis = np.linspace(0.0, 1.0, 41)
    x, y = np.meshgrid(axis, axis, indexing="ij")
    wells = -30 * np.exp(-((x - 0.5) ** 2 + (y - 0.5) ** 2) / 0.01) - 20 * np.exp(-(x**2 + y**2) / 0.01)
    kcal = units.kcal / units.mol  # eV per kcal/mol
    return axis, x, y, wells, FreeEnergySurface(("cn1", "cn2"), (axis, axis), (wells - wells.min()) * kcal, time=1000.0)

def test_barriers_compare_fes_reference_and_model_on_the_stationary_points(tmp_path):
    """FES barrier between the reactant and product CV points, next to E(TS) - E(reactant) of the files."""
    from ase import units
    from ase.calculators.lj import LennardJones
    from ase.io import read

    from ffpt.jobs.metad import MetadConfig, barriers, prepare

    (tmp_path / "reactions.json").write_text(json.dumps(REACTIONS))
    body = HO2.split("\n", 2)[2]
    stretched = "O 0.7695 0.1080 0.0\nO -0.4917 -0.2662 0.0\nH 2.4 -1.6 0.0\n"
    far = "O 0.7695 0.1080 0.0\nO -0.4917 -0.2662 0.0\nH 3.5 -2.6 0.0\n"
    for kind, energy, xyz in (("reactant", -150.90, body), ("TS", -150.82, stretched), ("product", -150.83, far)):
        (tmp_path / f"{kind}_09.xyz").write_text(f"3\nStep 0 E= {energy:.6f} |G|= 0.0\n{xyz}")
    config = MetadConfig(calculator="gfn2", structure=tmp_path / "TS_09.xyz", channel="09",
                         reactions=tmp_path / "reactions.json", temperature_K=500.0)
    _, cvs, _, _, _ = prepare(config)
    axis, x, y, wells, fes = two_well_fes()
    kcal = units.kcal / units.mol  # eV per kcal/mol
    calculator = LennardJones(sigma=1.0, epsilon=0.01, rc=5.0)
    found = barriers(config, cvs, fes, [], calculator)
    assert found["reference_barrier_kcal_per_mol"] == pytest.approx(0.08 * 627.509, rel=1e-3)
    assert found["reference_reverse_barrier_kcal_per_mol"] == pytest.approx(0.01 * 627.509, rel=1e-3)
    energies = {}
    for kind in ("reactant", "TS"):
        atoms = read(tmp_path / f"{kind}_09.xyz")
        atoms.calc = calculator
        energies[kind] = atoms.get_potential_energy()
    assert found["model_barrier_kcal_per_mol"] == pytest.approx((energies["TS"] - energies["reactant"]) / kcal)
    reactant, product = found["cv_points"]["reactant"], found["cv_points"]["product"]
    assert reactant == pytest.approx([0.5, 0.5], abs=0.05) and product[0] < 0.1
    saddle = wells[np.argmin(np.abs(axis - 0.25)), np.argmin(np.abs(axis - 0.25))]  # on the straight path
    assert found["fes_barrier_kcal_per_mol"] == pytest.approx(saddle + 30, abs=1.5)
    assert found["fes_reverse_barrier_kcal_per_mol"] == pytest.approx(saddle + 20, abs=1.5)


def test_fes_figure_of_a_run_marks_stationary_points_and_traces_the_barrier(tmp_path):
    """The figure's pieces as numbers: CV points of reactant, TS and product, the barrier estimates
    against time (eV; NaN where an estimate had no path), the IRC reference line, the title, the clip."""
    from ase.io import read

    from ffpt.analysis.fes import FreeEnergySurface, visited_level
    from ffpt.jobs.metad import MetadConfig, barrier_trace, barriers, fes_title, plot_run_fes, prepare
    from ffpt.simulate.hills import Hills

    (tmp_path / "reactions.json").write_text(json.dumps(REACTIONS))
    for kind, energy, h in (("reactant", -150.90, "1.2866 -0.7171"), ("TS", -150.82, "2.4 -1.6"),
                            ("product", -150.83, "3.5 -2.6")):
        (tmp_path / f"{kind}_09.xyz").write_text(
            f"3\nStep 0 E= {energy:.6f} |G|= 0.0\nO 0.7695 0.1080 0.0\nO -0.4917 -0.2662 0.0\nH {h} 0.0\n")
    config = MetadConfig(calculator="runs/ffpt-ft/model.pt", structure=tmp_path / "TS_09.xyz", channel="09",
                         reactions=tmp_path / "reactions.json", temperature_K=500.0, biasfactor=8.0)
    _, cvs, _, _, reaction = prepare(config)
    axis, x, y, wells, fes = two_well_fes()
    kcal = units.kcal / units.mol  # eV per kcal/mol
    early = FreeEnergySurface(fes.names, fes.axes, np.where(np.hypot(x - 0.5, y - 0.5) < 0.04, np.nan, fes.values), time=500.0)
    found = barriers(config, cvs, fes, [early], LennardJones(sigma=1.0, epsilon=0.01, rc=5.0))
    for kind in ("reactant", "TS", "product"):
        expected = [float(cv.compute(read(tmp_path / f"{kind}_09.xyz"))[0]) for cv in cvs]
        assert found["cv_points"][kind] == pytest.approx(expected)
    trace = barrier_trace(found)
    assert trace.time == (500.0, 1000.0)
    assert np.isnan(trace.barrier[0])  # the early estimate had not sampled the reactant's point
    assert trace.barrier[1] == pytest.approx(found["fes_barrier_kcal_per_mol"] * kcal)
    assert trace.reference == pytest.approx(0.08 * units.Hartree, rel=1e-6)  # E(TS) - E(reactant) of the files
    assert fes_title(config, "ffpt-ft", reaction, 2) == "ffpt-ft, channel 09 (HO2 -> H + O2): biasfactor 8, 500 K, 2 hills"
    # the walker stayed near the reactant: the colour scale stops at its highest visited point, not at 30 kcal/mol
    hills = Hills(("cn1", "cn2"), biasfactor=8.0, scales=[0.1, 0.1], time=[100.0, 200.0],
                  center=[[0.5, 0.5], [0.45, 0.5]], sigma=[[0.05, 0.05], [0.05, 0.05]], height=[0.01, 0.01])
    assert visited_level(fes, hills.center) == pytest.approx(fes.values[18, 20])
    assert visited_level(fes, hills.center) < 0.5 * np.nanmax(fes.values)
    path = plot_run_fes(tmp_path / "fes.png", config, fes, [early], hills, found, None, reaction)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
