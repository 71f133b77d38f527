"""One error path: every verb, given bad input, exits 2 with one located line and no traceback.

Each case runs ``ffpt.cli.main`` in-process on a bad input (missing file, bad config key, bad value
type, YAML syntax error, an element the model does not know, a degenerate cell, a one-frame training
set, a corrupted model file or checkpoint, bad override syntax, a bad teacher option) and checks:
exit status 2, no "Traceback" in stdout or stderr, exactly one ``ffpt VERB: error:`` line, and that
line names the file or key at fault.
"""

from __future__ import annotations

import re
from pathlib import Path

import ase.io
import pytest
import torch
from ase import Atoms
from ase.build import molecule
from conftest import emt_frames

from ffpt.cli import main
from ffpt.data import set_labels, write_frames
from ffpt.models import save_model
from ffpt.models.newtonnet import NewtonNet

ROOT = Path(__file__).resolve().parents[1]


def tiny_model(path: Path, elements=(1, 6, 8)) -> Path:
    """A small untrained NewtonNet model file for H, C, O (enough to load and to refuse N)."""
    torch.manual_seed(0)
    model = NewtonNet(elements=list(elements), cutoff=4.0, n_features=8, n_layers=1, n_basis=4)
    return save_model(model, path)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Every input the cases need, good and bad, in one folder."""
    d = tmp_path_factory.mktemp("bad_inputs")
    f = {"dir": d}
    f["model"] = tiny_model(d / "tiny.pt")
    blob = f["model"].read_bytes()
    (d / "truncated.pt").write_bytes(blob[: len(blob) // 2])
    f["truncated_model"] = d / "truncated.pt"
    f["frames"] = write_frames(d / "frames.extxyz", emt_frames(n=6))
    f["one_frame"] = write_frames(d / "one.extxyz", emt_frames(n=1))
    nh3 = molecule("NH3")
    set_labels(nh3, 0.0, nh3.positions * 0.0)
    f["nitrogen_frames"] = write_frames(d / "nh3.extxyz", [nh3])
    ase.io.write(d / "nh3.xyz", molecule("NH3"))
    f["nitrogen"] = d / "nh3.xyz"
    ase.io.write(d / "water.xyz", molecule("H2O"))
    f["water"] = d / "water.xyz"
    # water whose hydrogens are 0.17 A apart: the force fields cannot type it
    ase.io.write(d / "hh_water.xyz", Atoms("OHH", positions=[[0, 0, 0], [0.96, 0, 0], [1.13, 0, 0]]))
    f["hh_water"] = d / "hh_water.xyz"
    box = molecule("H2O", cell=[6.0, 6.0, 6.0], pbc=True)
    box.positions += 3.0
    f["periodic_frames"] = write_frames(d / "box.extxyz", [box])
    torch.save({"format": "ffpt-model", "atoms": Atoms("H")}, d / "pickled.pt")  # not weights: torch's long refusal
    f["pickled"] = d / "pickled.pt"
    flat = molecule("H2O", cell=[[5, 0, 0], [5, 0, 0], [0, 0, 5]], pbc=True)  # two equal vectors: zero volume
    flat.positions += 1.0
    ase.io.write(d / "flat.extxyz", flat)
    f["flat"] = d / "flat.extxyz"
    labelled = flat.copy()
    set_labels(labelled, 0.0, labelled.positions * 0.0)
    f["flat_frames"] = write_frames(d / "flat_labelled.extxyz", [labelled])
    (d / "syntax.yaml").write_text("steps: 10\nseed: a: b\n")
    f["syntax"] = d / "syntax.yaml"
    (d / "typo.yaml").write_text("wokers: 2\n")
    f["typo"] = d / "typo.yaml"
    # an MD run folder whose checkpoint is garbage (a killed disk, a foreign file)
    (d / "md_run").mkdir()
    (d / "md_run" / "checkpoint.json").write_text('{"step": 10, "positions": [[0.0, 0')
    # a training folder whose last.ckpt is truncated
    (d / "train_run" / "checkpoints").mkdir(parents=True)
    (d / "train_run" / "checkpoints" / "last.ckpt").write_bytes(blob[:100])
    return f


def _md(f, *more):
    return ["md", "--calculator", str(f["model"]), "--structure", str(f["water"]), "--steps", "5",
            "--out", str(f["dir"] / "md_out"), "--no-progress", *more]


def _metad(f, *more):
    return ["metad", "--calculator", str(f["model"]), "--structure", str(f["water"]), "--cv", "O1_H1",
            "--r0", "1.2", "--steps", "5", "--out", str(f["dir"] / "metad_out"), "--no-progress", *more]


def _sample(f, *more):
    return ["sample", "--seeds", "O", "--out", str(f["dir"] / "s.extxyz"), "--md-frames", "0", "--nm-frames", "0",
            "--random-frames", "1", "--no-progress", *more]


def _label(f, *more):
    return ["label", "--data", str(f["frames"]), "--out", str(f["dir"] / "l.extxyz"), "--teacher", "uff",
            "--no-progress", *more]


def _train(f, *more):
    return ["train", "--train", str(f["frames"]), "--out", str(f["dir"] / "train_out"), "--max-epochs", "1",
            *more]


def _eval(f, *more):
    return ["eval", str(f["model"]), str(f["frames"]), "--json", str(f["dir"] / "e.json"), *more]


def _al(f, *more):
    return ["al", "--labels", str(f["frames"]), "--teacher", "uff", f"explore.structures=[{f['water']}]",
            "--out", str(f["dir"] / "al_out"), "--quiet", *more]


ETHANOL = str(ROOT / "experiments" / "ethanol.yaml")

# id -> (argv from the files, a fragment the error line must contain)
CASES = {
    # missing files
    "sample-missing-config": (lambda f: ["sample", str(f["dir"] / "nope.yaml")], "nope.yaml"),
    "sample-missing-seed-file": (lambda f: ["sample", "--seeds", str(f["dir"] / "nope.xyz"), "--out",
                                            str(f["dir"] / "s.extxyz")], "nope.xyz"),  # read as SMILES, named
    "label-missing-data": (lambda f: ["label", "--data", str(f["dir"] / "nope.extxyz"), "--out",
                                      str(f["dir"] / "l.extxyz"), "--teacher", "uff"], "nope.extxyz"),
    "train-missing-data": (lambda f: ["train", "--train", str(f["dir"] / "nope.extxyz"), "--out",
                                      str(f["dir"] / "t")], "nope.extxyz"),
    "eval-missing-model": (lambda f: ["eval", str(f["dir"] / "nope.pt"), str(f["frames"])], "nope.pt"),
    "eval-missing-data": (lambda f: ["eval", str(f["model"]), str(f["dir"] / "nope.extxyz")], "nope.extxyz"),
    "md-missing-structure": (lambda f: _md(f, "--structure", str(f["dir"] / "nope.xyz")), "nope.xyz"),
    "metad-missing-structure": (lambda f: _metad(f, "--structure", str(f["dir"] / "nope.xyz")), "nope.xyz"),
    "run-missing-config": (lambda f: ["run", str(f["dir"] / "nope.yaml"), "--out", str(f["dir"] / "r")],
                           "nope.yaml"),
    "demo-missing-config": (lambda f: ["demo", str(f["dir"] / "nope.yaml"), "--out", str(f["dir"] / "r")],
                            "nope.yaml"),
    # bad config keys (file or override)
    "sample-bad-key": (lambda f: _sample(f, "md.temprature=[300]"), "md.temprature"),
    "label-bad-key": (lambda f: ["label", str(f["typo"])], "wokers"),
    "train-bad-key": (lambda f: _train(f, "training.max_epoch=3"), "training.max_epoch"),
    "eval-bad-key": (lambda f: _eval(f, "batchsize=3"), "batchsize"),
    "md-bad-key": (lambda f: _md(f, "monitors.min_distanse=0.4"), "monitors.min_distanse"),
    "metad-bad-key": (lambda f: _metad(f, "hieght=2"), "hieght"),
    "run-bad-key": (lambda f: ["run", ETHANOL, "stability.md.monitors.min_distanse=1", "--out",
                               str(f["dir"] / "r")], "stability.md.monitors.min_distanse"),
    "demo-bad-key": (lambda f: ["demo", "metad.options.stepz=1", "--out", str(f["dir"] / "r")], "metad"),
    # bad value types
    "sample-bad-value": (lambda f: _sample(f, "seed=abc"), "seed"),
    "label-bad-value": (lambda f: _label(f, "workers=many"), "workers"),
    "train-bad-value": (lambda f: _train(f, "training.lr=fast"), "training.lr"),
    "eval-bad-value": (lambda f: _eval(f, "batch_size=-1"), "batch_size"),
    "md-bad-value": (lambda f: _md(f, "timestep_fs=fast"), "timestep_fs"),
    "metad-bad-value": (lambda f: _metad(f, "pace=often"), "pace"),
    "run-bad-value": (lambda f: ["run", ETHANOL, "budgets=many", "--out", str(f["dir"] / "r")], "budgets"),
    "demo-bad-value": (lambda f: ["demo", "arm_seeds=two", "--out", str(f["dir"] / "r")], "arm_seeds"),
    # YAML syntax errors: file and line
    **{f"{verb}-yaml-syntax": (lambda f, verb=verb: [verb, str(f["syntax"])] + (
        ["--out", str(f["dir"] / "y")] if verb in ("md", "metad", "run", "demo") else []), "syntax.yaml:2")
       for verb in ("sample", "label", "train", "eval", "md", "metad", "run", "demo")},
    # bad override syntax
    **{f"{verb}-bad-override": (lambda f, verb=verb: [verb, str(f["typo"]), "steps:5"] + (
        ["--out", str(f["dir"] / "o")] if verb in ("md", "metad", "run", "demo") else []), "steps:5")
       for verb in ("sample", "label", "train", "md", "metad", "run", "demo")},
    "eval-bad-override": (lambda f: _eval(f, "=5"), "=5"),
    # an element the model does not know: atom index, element and model file
    "md-unknown-element": (lambda f: _md(f, "--structure", str(f["nitrogen"])), "atom 0 (N)"),
    "metad-unknown-element": (lambda f: _metad(f, "--structure", str(f["nitrogen"])), "atom 0 (N)"),
    "eval-unknown-element": (lambda f: ["eval", str(f["model"]), str(f["nitrogen_frames"])], "atom 0 (N)"),
    # degenerate cells: file and frame
    "md-degenerate-cell": (lambda f: _md(f, "--structure", str(f["flat"])), "flat.extxyz, frame 0"),
    "metad-degenerate-cell": (lambda f: _metad(f, "--structure", str(f["flat"])), "flat.extxyz, frame 0"),
    "eval-degenerate-cell": (lambda f: ["eval", str(f["model"]), str(f["flat_frames"])], "flat_labelled.extxyz"),
    # corrupted model files
    "eval-corrupted-model": (lambda f: ["eval", str(f["truncated_model"]), str(f["frames"])], "truncated.pt"),
    "md-corrupted-model": (lambda f: _md(f, "--calculator", str(f["truncated_model"])), "truncated.pt"),
    "metad-corrupted-model": (lambda f: _metad(f, "--calculator", str(f["truncated_model"])), "truncated.pt"),
    "train-corrupted-init": (lambda f: _train(f, "--stage", "finetune", "--init", str(f["truncated_model"])),
                             "truncated.pt"),
    # a one-frame training set, corrupted checkpoints
    "train-one-frame": (lambda f: ["train", "--train", str(f["one_frame"]), "--out", str(f["dir"] / "t1"),
                                   "--max-epochs", "1"], "one.extxyz"),
    "train-truncated-last-ckpt": (lambda f: _train(f, "--out", str(f["dir"] / "train_run")), "last.ckpt"),
    "md-corrupted-checkpoint": (lambda f: _md(f, "--out", str(f["dir"] / "md_run")), "checkpoint"),
    # bad teacher options: syntax, unknown teacher, a value the teacher refuses
    "sample-teacher-option-syntax": (lambda f: _sample(f, "--teacher-option", "variant"), "variant"),
    "sample-teacher-option-value": (lambda f: _sample(f, "--teacher", "mmff94", "--teacher-option", "variant=X"),
                                    "mmff94"),
    "label-teacher-option-syntax": (lambda f: _label(f, "--teacher-option", "variant"), "variant"),
    "label-teacher-option-value": (lambda f: _label(f, "--teacher", "mmff94", "--teacher-option", "variant=X"),
                                   "mmff94"),
    "label-unknown-teacher": (lambda f: _label(f, "--teacher", "no-such-teacher"), "no-such-teacher"),
    "md-teacher-option-value": (lambda f: _md(f, "--calculator", "mmff94", "--teacher-option", "variant=X"),
                                "mmff94"),
    "md-teacher-option-for-model": (lambda f: _md(f, "--teacher-option", "xc=pbe"), "tiny.pt"),
    "metad-teacher-option-syntax": (lambda f: _metad(f, "--calculator", "uff", "--teacher-option", "x"), "'x'"),
    # committees and active learning
    "md-committee-with-a-teacher": (lambda f: _md(f, "--calculator", str(f["model"]), "uff"), "'uff'"),
    "md-committee-of-a-corrupted-model": (lambda f: _md(f, "--calculator", str(f["model"]),
                                                       str(f["truncated_model"])), "truncated.pt"),
    "md-uncertainty-without-committee": (lambda f: _md(f, "uncertainty.stop_above=0.5"), "uncertainty"),
    "al-missing-config": (lambda f: ["al", str(f["dir"] / "nope.yaml"), "--out", str(f["dir"] / "a")], "nope.yaml"),
    "al-missing-labels": (lambda f: _al(f, "--labels", str(f["dir"] / "nope.extxyz")), "nope.extxyz"),
    "al-bad-key": (lambda f: _al(f, "select.lowr=0.1"), "select.lowr"),
    "al-bad-value": (lambda f: _al(f, "select.upper=0.01"), "select"),
    "al-committee-of-one": (lambda f: _al(f, "--committee", "1"), "committee"),
    "al-yaml-syntax": (lambda f: ["al", str(f["syntax"]), "--out", str(f["dir"] / "y")], "syntax.yaml:2"),
    "al-missing-structure": (lambda f: _al(f, f"explore.structures=[{f['dir'] / 'nope.xyz'}]"), "nope.xyz"),
    "al-missing-pretrained": (lambda f: _al(f, "--pretrained", str(f["dir"] / "missing.pt")), "missing.pt"),
    "al-unknown-teacher": (lambda f: _al(f, "--teacher", "gfn3"), "gfn3"),
    # a structure the force-field teacher cannot type: named with its molecule and atoms, before any step
    "md-uff-untypable": (lambda f: ["md", "--calculator", "uff", "--structure", str(f["hh_water"]), "--steps", "5",
                                    "--out", str(f["dir"] / "hh_md"), "--no-progress"], "atoms [0, 1, 2]"),
    "md-mmff94-untypable": (lambda f: ["md", "--calculator", "mmff94", "--structure", str(f["hh_water"]),
                                       "--steps", "5", "--out", str(f["dir"] / "hh_md2"), "--no-progress"],
                            "molecule H2O (atoms [0, 1, 2]"),
    "metad-uff-untypable": (lambda f: ["metad", "--calculator", "uff", "--structure", str(f["hh_water"]), "--cv",
                                       "O1_H1", "--r0", "1.2", "--steps", "5", "--out", str(f["dir"] / "hh_metad"),
                                       "--no-progress"], "hh_water.xyz frame 0"),
    "metad-mmff94-untypable": (lambda f: ["metad", "--calculator", "mmff94", "--structure", str(f["hh_water"]),
                                          "--cv", "O1_H1", "--r0", "1.2", "--steps", "5", "--out",
                                          str(f["dir"] / "hh_metad2"), "--no-progress"], "atoms [0, 1, 2]"),
    "metad-no-cv": (lambda f: ["metad", "--calculator", "uff", "--structure", str(f["water"]), "--steps", "5",
                               "--out", str(f["dir"] / "nocv"), "--no-progress"], "--cv"),
    # a periodic frame for a teacher of isolated molecules
    "label-periodic-frame": (lambda f: ["label", "--data", str(f["periodic_frames"]), "--out",
                                        str(f["dir"] / "pbc.extxyz"), "--teacher", "uff", "--no-progress"],
                             "box.extxyz frame 0"),
    "export-not-a-model": (lambda f: ["export", str(f["pickled"]), "--out", str(f["dir"] / "x.pt2")], "pickled.pt"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_exits_2_with_one_located_line(case, files, capsys):
    build, fragment = CASES[case]
    argv = build(files)
    code = main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    verb = argv[0]
    errors = [line for line in err.splitlines() if line.startswith(f"ffpt {verb}: error: ")]
    assert code == 2, err
    assert len(errors) == 1, err
    if fragment is not None:
        assert fragment in errors[0], errors[0]


def test_a_long_library_reason_is_cut_between_words(files, capsys):
    """The export of a foreign pickle quotes torch's refusal, cut between two of its words."""
    assert main(["export", str(files["pickled"]), "--out", str(files["dir"] / "y.pt2")]) == 2
    line = capsys.readouterr().err.strip()
    with pytest.raises(Exception) as caught:
        torch.load(files["pickled"], weights_only=True)
    words = set(re.sub(r"\x1b\[[0-9;]*m", "", str(caught.value)).split())  # less terminal colour codes
    assert line.endswith(" ...)"), line
    quoted = line.split("(", 1)[1].removesuffix(" ...)").split()
    assert quoted and all(word in words for word in quoted), [w for w in quoted if w not in words]


def test_a_periodic_frame_is_labelled_per_molecule_when_asked(files, tmp_path):
    """``ignore_cell=true`` labels the box's molecule as the isolated molecule it is."""
    from ffpt.data import read_frames

    out = tmp_path / "pbc.extxyz"
    assert main(["label", "--data", str(files["periodic_frames"]), "--out", str(out), "--teacher", "uff",
                 "--teacher-option", "ignore_cell=true", "--no-progress"]) == 0
    (boxed,) = read_frames(out)
    alone = boxed.copy()
    alone.pbc = False
    from ffpt import teachers

    label = teachers.get("uff").label(alone)
    assert boxed.info["REF_energy"] == pytest.approx(label.energy, abs=1e-9)


def test_debug_shows_the_traceback(files):
    with pytest.raises(Exception, match="nope.yaml"):
        main(["sample", str(files["dir"] / "nope.yaml"), "--debug"])
