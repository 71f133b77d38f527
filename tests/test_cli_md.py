"""``ffpt md``: the interface others rely on, config validation, calculator resolution."""

import json

import ase.io
import numpy as np
import pytest
import yaml
from ase.cluster import Icosahedron
from ase.calculators.lj import LennardJones

from ffpt import teachers
from ffpt.cli import main
from ffpt.simulate.calculators import resolve
from ffpt.config import ConfigError, load_config
from ffpt.simulate.config import MDConfig
from ffpt.teachers import Label, Teacher, TeacherInfo


class ArgonTeacher(Teacher):
    """Lennard-Jones argon as a registered teacher (stands in for a real one in CLI tests)."""

    def __init__(self, rc: float = 8.0, epsilon: float = 0.0104):
        super().__init__()
        self.options = {"rc": rc, "epsilon": epsilon}
        self._lj = LennardJones(sigma=3.4, epsilon=epsilon, rc=rc, smooth=True)

    @property
    def info(self) -> TeacherInfo:
        return TeacherInfo(name="argon-test", level="LJ", version="0", options=self.options)

    def compute(self, atoms) -> Label:
        atoms = atoms.copy()
        atoms.calc = self._lj
        return Label(atoms.get_potential_energy(), atoms.get_forces())


@pytest.fixture
def argon_teacher(monkeypatch):
    monkeypatch.setitem(teachers.REGISTRY, "argon-test", f"{__name__}:ArgonTeacher")
    return "argon-test"


@pytest.fixture
def cluster_file(tmp_path):
    path = tmp_path / "ar13.xyz"
    ase.io.write(path, Icosahedron("Ar", noshells=2, latticeconstant=5.26))
    return path


def test_md_verb_writes_trajectory_and_stability(tmp_path, argon_teacher, cluster_file, capsys):
    out = tmp_path / "run"
    code = main(["md", "--calculator", argon_teacher, "--structure", str(cluster_file), "--steps", "40",
                 "--timestep", "5", "--temperature", "30", "--out", str(out), "--save-every", "10",
                 "--ensemble", "langevin", "--friction", "0.02", "--seed", "3", "--no-progress"])
    assert code == 0
    stability = json.loads((out / "stability.json").read_text())
    assert stability["stable"] is True and stability["failed_at_fs"] is None and stability["reason"] is None
    assert stability["simulated_fs"] == 200.0
    frames = ase.io.read(out / "trajectory.extxyz", ":")
    assert [f.info["step"] for f in frames] == [0, 10, 20, 30, 40]
    assert all(np.isfinite(f.get_potential_energy()) for f in frames)
    saved = yaml.safe_load((out / "md_config.yaml").read_text())
    assert saved["ensemble"] == "langevin" and saved["friction_per_fs"] == 0.02 and saved["seed"] == 3
    assert saved["calculator"] == argon_teacher
    assert json.loads(capsys.readouterr().out)["stable"] is True


def test_md_verb_yaml_config_flags_override_and_start_frame_refused(tmp_path, argon_teacher, cluster_file, capsys):
    """The flag --min-distance 4.0 overrides the YAML's 3.0: the argon cluster (nearest neighbours
    3.72 A) then fails the monitor before any step, which is an input error (exit 2, one line naming
    the monitor and atoms), never an MD failure at 0 fs; with 3.0 it runs."""
    config = tmp_path / "md.yaml"
    config.write_text(yaml.safe_dump({"calculator": argon_teacher, "structure": str(cluster_file), "steps": 30,
                                      "timestep_fs": 2.0, "monitors": {"min_distance": 3.0}}))
    out = tmp_path / "run"
    assert main(["md", str(config), "--out", str(out), "--check-every", "5", "--min-distance", "4.0",
                 "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "start frame already fails monitor 'min_distance'" in err
    assert "< min distance 4.0 A" in err and not (out / "stability.json").exists()
    assert main(["md", str(config), "--out", str(tmp_path / "ok"), "--check-every", "5", "--no-progress"]) == 0
    assert yaml.safe_load((tmp_path / "ok" / "md_config.yaml").read_text())["check_every"] == 5


def test_md_verb_batch_mode(tmp_path, argon_teacher, cluster_file, capsys):
    out = tmp_path / "batch"
    assert main(["md", "--calculator", argon_teacher, "--structure", str(cluster_file), "--steps", "10",
                 "--out", str(out), "--seeds", "0", "1", "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["seeds"] == [0, 1] and summary["median_time_to_failure_fs"] is None
    assert (out / "seed_1" / "stability.json").exists() and (out / "survival.png").exists()


def test_md_verb_errors_name_the_culprit(tmp_path, argon_teacher, cluster_file, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("steps: 10\nmonitors:\n  min_distanse: 0.4\n")
    args = ["md", "--calculator", argon_teacher, "--structure", str(cluster_file), "--out", str(tmp_path / "o"),
            "--no-progress"]
    assert main(args + ["--config", str(config)]) == 2
    assert "bad.yaml: key 'monitors.min_distanse': unknown key" in capsys.readouterr().err
    assert main(["md", "--calculator", argon_teacher, "--structure", str(tmp_path / "nope.xyz"),
                 "--out", str(tmp_path / "o")]) == 2
    assert "nope.xyz: no such structure file" in capsys.readouterr().err
    assert main(["md", "--calculator", "no-such-model.pt", "--structure", str(cluster_file),
                 "--out", str(tmp_path / "o")]) == 2
    assert "calculator 'no-such-model.pt' is neither a registered teacher" in capsys.readouterr().err
    assert main(["md", "--structure", str(cluster_file), "--out", str(tmp_path / "o")]) == 2
    assert "missing --calculator" in capsys.readouterr().err


class HydrogenOnly(ArgonTeacher):
    """A teacher that knows only hydrogen: argon is an input error, raised on the start frame."""

    def compute(self, atoms) -> Label:
        from ffpt.data import DataError

        raise DataError("element Ar (atom 0) is not known to teacher 'h-only' (elements: H)")


def test_md_verb_element_not_in_the_model_exits_2_before_the_first_step(tmp_path, monkeypatch, cluster_file, capsys):
    monkeypatch.setitem(teachers.REGISTRY, "h-only", f"{__name__}:HydrogenOnly")
    for extra in ([], ["--seeds", "0", "1"]):
        out = tmp_path / f"run{len(extra)}"
        assert main(["md", "--calculator", "h-only", "--structure", str(cluster_file), "--steps", "10",
                     "--out", str(out), "--no-progress", *extra]) == 2
        err = capsys.readouterr().err
        assert "element Ar (atom 0) is not known" in err and "Traceback" not in err
        assert not list(out.rglob("stability.json")) and not (out / "batch.json").exists()  # not an instability


def test_config_validation():
    with pytest.raises(ConfigError, match="key 'timestep_fs': Input should be greater than 0"):
        load_config(MDConfig, flags={"timestep_fs": -1.0})
    with pytest.raises(ConfigError, match="ensemble 'bussi' needs temperature_K > 0"):
        load_config(MDConfig, flags={"ensemble": "bussi", "temperature_K": 0.0})
    config = load_config(MDConfig, flags={"monitors.allowed_species": ["H2", "OH"], "seed": None})
    assert config.monitors.allowed_species == ["H2", "OH"] and config.seed == 0


def test_resolve_teacher_with_typed_options(argon_teacher, tmp_path):
    calc = resolve(f"{argon_teacher}:rc=6.5,epsilon=0.01")
    assert isinstance(calc, ArgonTeacher) and calc.options == {"rc": 6.5, "epsilon": 0.01}
    with pytest.raises(ValueError, match="option 'rc' must look like key=value"):
        resolve(f"{argon_teacher}:rc")
    with pytest.raises(ValueError, match="known|registered teacher"):
        resolve(str(tmp_path / "missing.ffpt"))
