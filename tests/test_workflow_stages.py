"""Stage caching of run directories: skip when unchanged, rerun when inputs change, resume when killed."""

import json
import subprocess
import sys
import textwrap

from ffpt.workflows.stages import RunDirectory


def test_skip_rerun_and_propagation(tmp_path):
    calls = []

    def first(folder):
        calls.append("first")
        (folder / "a.txt").write_text("A")
        return {"path": str(folder / "a.txt")}

    def second(folder):
        calls.append("second")
        return {"n": 1}

    run = RunDirectory(tmp_path, echo=lambda s: None)
    out1 = run.stage("first", {"x": 1}, first)
    run.stage("second", {"upstream": out1}, second)
    assert calls == ["first", "second"]
    again = RunDirectory(tmp_path, echo=lambda s: None)
    again.stage("first", {"x": 1}, first)
    again.stage("second", {"upstream": out1}, second)
    assert calls == ["first", "second"] and again.log.events == [("first", "skipped"), ("second", "skipped")]
    changed = RunDirectory(tmp_path, echo=lambda s: None)
    changed.stage("first", {"x": 2}, first)
    assert calls[-1] == "first" and changed.log.status("first") == "ran"


def test_an_edited_input_file_named_in_the_config_reruns_its_stage(tmp_path):
    structure = tmp_path / "box.extxyz"
    structure.write_text("first version")
    calls = []
    inputs = {"stability": {"structure": str(structure), "n_runs": 2}}  # a path as YAML gives it: a string
    for attempt in range(3):
        if attempt == 2:
            structure.write_text("edited")
        run = RunDirectory(tmp_path / "run", echo=lambda s: None)
        run.stage("md", inputs, lambda folder: calls.append(attempt) or {})
    assert calls == [0, 2]  # skipped when unchanged, rerun after the edit


def test_killed_stage_resumes_with_its_folder(tmp_path):
    script = textwrap.dedent(
        f"""
        import os, sys
        from ffpt.workflows.stages import RunDirectory
        def work(folder):
            done = sorted(p.name for p in folder.glob("item*"))
            for k in range(5):
                if f"item{{k}}" in done:
                    continue
                (folder / f"item{{k}}").write_text("x")
                with open(folder.parent / "calls.log", "a") as fh:
                    fh.write(f"{{k}}\\n")
                if k == 2 and sys.argv[1] == "die":
                    os._exit(9)
            return {{"n": 5}}
        RunDirectory({str(tmp_path)!r}, echo=lambda s: None).stage("work", {{"v": 1}}, work)
        """
    )
    assert subprocess.run([sys.executable, "-c", script, "die"]).returncode == 9
    assert not (tmp_path / "work" / "stage.json").exists()
    assert subprocess.run([sys.executable, "-c", script, "live"]).returncode == 0
    calls = (tmp_path / "calls.log").read_text().split()
    assert calls == ["0", "1", "2", "3", "4"]  # each item once: resumed, not restarted
    assert json.loads((tmp_path / "work" / "stage.json").read_text())["outputs"] == {"n": 5}


def test_keys_see_resolved_folders_and_file_contents_not_spellings(tmp_path, monkeypatch):
    """A folder given relative from one working directory and absolute (or by another relative
    spelling) from another is one input; a file is its content."""
    from ffpt.workflows.stages import digest

    (tmp_path / "data" / "geoms").mkdir(parents=True)
    (tmp_path / "data" / "x.xyz").write_text("1\n\nH 0 0 0\n")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path)
    absolute = {"geometries": str(tmp_path / "data" / "geoms"), "structure": str(tmp_path / "data" / "x.xyz")}
    key = digest(absolute)
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert digest({"geometries": str(tmp_path / "data" / ".." / "data" / "geoms"),
                   "structure": "../data/x.xyz"}) == key
    (tmp_path / "data" / "x.xyz").write_text("1\n\nH 0 0 0.1\n")
    assert digest(absolute) != key  # an edited file is a new input


def test_a_stage_recorded_under_the_old_key_is_still_up_to_date(tmp_path, monkeypatch):
    """Keys of stages whose inputs name folders changed (folders are resolved now): a run folder made
    before, rerun from its own working directory with the same or an absolute spelling, skips the
    stage and records the new key."""
    from ffpt.workflows.stages import digest

    (tmp_path / "geoms").mkdir()
    monkeypatch.chdir(tmp_path)
    calls = []

    def work(folder):
        calls.append(1)
        return {"n": 1}

    old_inputs = {"geometries": "geoms"}
    folder = tmp_path / "run" / "metad"
    folder.mkdir(parents=True)
    old_key = digest(old_inputs, dirs="none")  # the key of the folder spelled as the YAML had it
    (folder / "inputs.json").write_text(json.dumps({"key": old_key, "inputs": old_inputs}))
    (folder / "stage.json").write_text(json.dumps({"key": old_key, "outputs": {"n": 1}, "seconds": 1.0}))
    run = RunDirectory("run", echo=lambda s: None)
    new_inputs = {"geometries": str(tmp_path / "geoms")}  # now made absolute at the CLI
    assert run.stage("metad", new_inputs, work) == {"n": 1} and calls == []
    assert json.loads((folder / "stage.json").read_text())["key"] == digest(new_inputs) != old_key
    assert run.stage("metad", {"geometries": str(tmp_path)}, work) == {"n": 1} and calls == [1]  # another folder
