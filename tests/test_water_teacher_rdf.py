"""benchmarks/water_teacher_rdf.py: the teacher's own MD of the water box, resumed and extended, and its RDF
(flexible TIP3P stands in for GFN2-xTB, which costs about 10 s per step)."""

import json
import subprocess
import sys
from pathlib import Path

from ffpt.observables.rdf import RDF

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "water_teacher_rdf.py"


def script(out: Path, steps: int) -> dict:
    run = subprocess.run([sys.executable, str(SCRIPT), "--teacher", "tip3p", "--steps", str(steps), "--save-every", "5",
                          "--from-fs", "5", "--rmax", "4.0", "--bins", "40", "--quiet", "--out", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads((out / "summary.json").read_text())


def test_the_teacher_run_extends_from_its_checkpoint_and_gives_the_rdf(tmp_path):
    first = script(tmp_path, 10)
    assert first["this_call"]["steps_this_call"] == 10
    assert first["seeds"]["seed_0"]["n_frames"] == 1  # frames at 0, 2.5, 5 fs; the RDF from 5 fs on
    more = script(tmp_path, 30)
    assert more["this_call"]["steps"] == 30 and more["this_call"]["steps_this_call"] == 20  # resumed, not redone
    assert more["seeds"]["seed_0"]["window_fs"] == [5.0, 15.0] and more["n_frames"] == 5
    rdf = RDF.load(tmp_path / "rdf.json")
    assert set(rdf.g) == {"O-O", "O-H", "H-H"} and rdf.g["O-O"].max() > 1
    assert abs(more["density_g_cm3"] - 0.997) < 1e-3
