"""Active learning with a committee: explore, pick where the members disagree, label, fine-tune, repeat.

Round r (every step a cached stage of the run folder, :class:`~ffpt.workflows.stages.RunDirectory`):

1. **train**: a committee of K members on all labels so far (:mod:`ffpt.training.committee`: seeds and
   bootstrap resamples). Round 0 fine-tunes every member from ``pretrained`` (the FFPT-FT arm) or
   trains from scratch (the baseline); later rounds warm-start member k from member k of round r-1.
2. **explore**: committee MD (or metadynamics) from every start structure and temperature, ``runs``
   seeds each, with the stability monitors; the stable fraction of these runs is the round's
   stability, reported with its 95 % interval and Kaplan-Meier median time to failure
   (:func:`ffpt.analysis.survival.survival_curve`). With ``explore.md.batch`` the seeds of a structure
   and temperature run as batched replicas (:mod:`ffpt.dynamics.batched`), the same runs to rounding.
3. **stop?** when the stable fraction reaches ``stop.stable_fraction``, the label budget is spent or
   ``rounds`` rounds of labels were added.
4. **select** saved frames whose largest per-atom force spread lies in [lower, upper] eV/A, spaced in
   time and by farthest-point sampling from the labelled set (:mod:`ffpt.sampling.selection`), at most
   ``max_per_round`` (and the budget left).  No frame in the window also ends the loop.
5. **label** them with the teacher through the cached labeller (:mod:`ffpt.teachers.runner`).

A killed run called again resumes inside the round it was in: finished stages are skipped, labels
come from the cache, training and MD resume from their checkpoints, so the labels are the same and
none is computed twice. A folder of another config re-runs only the stages whose inputs changed.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import math
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import numpy as np
from pydantic import Field, field_validator, model_validator

from ffpt import keys
from ffpt.config import ConfigError, Strict
from ffpt.data.io import read_frames, write_frames
from ffpt.data.splits import split
from ffpt.fileio import atomic_write_json, output_lock
from ffpt.dynamics.engine import STABILITY_FILE
from ffpt.jobs.metad import MetadConfig
from ffpt.simulate.config import MDConfig
from ffpt.training.config import CommitteeConfig, FinetuneConfig, ModelConfig, TrainingConfig
from ffpt.workflows.combustion_starts import CombustionStarts, combustion_starts
from ffpt.workflows.stages import RunDirectory

ROUND = "round_{:02d}"


class ExploreConfig(Strict):
    """Committee MD (or metadynamics) that looks for where the committee is unsure."""

    structures: list[Path] | None = Field(None, min_length=1, description="start structures (any ASE-readable file)")
    h2combustion: CombustionStarts | None = Field(
        None, description="or: every listed combustion channel's stationary point, in the channel's spin state")
    temperatures_K: list[float] = Field([300.0], min_length=1)
    runs: int = Field(4, ge=1, description="seeds per structure and temperature")
    md: MDConfig = Field(default_factory=lambda: MDConfig(ensemble="langevin", steps=2000, save_every=10))
    metad: MetadConfig | None = Field(None, description="explore by metadynamics instead (e.g. a reaction channel)")

    @field_validator("md", mode="before")
    @classmethod
    def _thermostat_by_default(cls, value):
        """An ``md`` section without ``ensemble`` explores with Langevin dynamics at ``temperatures_K``, as
        the section's default does (an MD run alone defaults to NVE, which keeps no temperature)."""
        if isinstance(value, dict) and "ensemble" not in value:
            return {**value, "ensemble": "langevin"}
        return value

    @model_validator(mode="after")
    def _set_by_the_loop(self):
        for name, section in (("md", self.md), ("metad", self.metad)):
            given = sorted({"calculator", "teacher_options", "structure", "seed", "temperature_K"}
                           & (section.model_fields_set if section is not None else set()))
            if given:
                raise ValueError(f"{name}: {given} are set by active learning (committee, structures, seeds, "
                                 "temperatures_K)")
        if (self.structures is None) == (self.h2combustion is None):
            raise ValueError("give exactly one of structures, h2combustion")
        if self.h2combustion is not None and self.metad is not None:
            raise ValueError("h2combustion: the starts explore by MD (metad explores one channel from its structure)")
        if self.h2combustion is not None and self.h2combustion.groups:
            raise ValueError("h2combustion.groups: groups of starts are compared in stability.h2combustion")
        return self

    def starts(self, folder: Path) -> dict[str, Path]:
        """Start name -> structure file: ``s0``, ``s1``, ... for ``structures``; for ``h2combustion``
        (``TS_09``, ...) each stationary point with its spin written to ``folder``/starts/NAME.extxyz."""
        if self.structures is not None:
            return {f"s{k}": path for k, path in enumerate(self.structures)}
        structures = combustion_starts(self.h2combustion, self.md.monitors.min_distance, "explore.h2combustion",
                                       "explore.md.monitors.min_distance")
        for atoms in structures.values():  # the start's name carries its channel; extxyz reads '01' back as 1
            del atoms.info[keys.CHANNEL]
        return {name: write_frames(Path(folder) / "starts" / f"{name}.extxyz", [atoms])
                for name, atoms in structures.items()}


class SelectConfig(Strict):
    """The selection window and thinning (:mod:`ffpt.sampling.selection`)."""

    lower: float = Field(0.05, ge=0, description="least max force spread worth a label (eV/A)")
    upper: float = Field(1.0, gt=0, description="largest max force spread still physical (eV/A)")
    max_per_round: int = Field(10, ge=1)
    min_spacing_fs: float = Field(20.0, ge=0, description="least time between picks of one run (fs)")
    farthest_point: bool = Field(True, description="farthest-point picks on an inverse-distance descriptor")

    @model_validator(mode="after")
    def _window(self):
        if self.upper <= self.lower:
            raise ValueError(f"upper ({self.upper}) must exceed lower ({self.lower})")
        return self


class StopConfig(Strict):
    stable_fraction: float | None = Field(1.0, gt=0, le=1, description="stop once this fraction of runs is stable")
    max_labels: int | None = Field(None, ge=1, description="labels active learning may add in all (budget)")


class ActiveLearningSettings(Strict):
    """The loop, independent of where the first labels and model come from (also an experiment section)."""

    teacher: str | None = Field(None, description="ab initio teacher of the new labels (ffpt teachers)")
    teacher_options: dict[str, Any] = Field(default_factory=dict)
    committee: CommitteeConfig = Field(default_factory=lambda: CommitteeConfig(size=4))
    explore: ExploreConfig
    select: SelectConfig = Field(default_factory=SelectConfig)
    rounds: int = Field(5, ge=0, description="most rounds of new labels")
    stop: StopConfig = Field(default_factory=StopConfig)
    workers: int = Field(1, ge=1, description="parallel MD runs and label tasks (Dask)")

    @model_validator(mode="after")
    def _a_committee(self):
        if self.committee.size < 2:
            raise ValueError("committee.size must be >= 2 (the disagreement needs several members)")
        return self


class ALConfig(ActiveLearningSettings):
    """``ffpt al CONFIG.yaml``: active learning from a few labelled frames."""

    name: str = "active learning"
    labels: Path = Field(description="the first ab initio labels (extxyz, npz or ASE db)")
    valid: Path | None = Field(None, description="validation labels (default: 10 % of labels, at least 1)")
    test: Path | None = Field(None, description="test labels: the committee's errors after every round")
    pretrained: Path | None = Field(None, description="pre-trained model (FFPT-FT); none: members from scratch")
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=lambda: TrainingConfig(stage="finetune"))
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig)
    seed: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _needs_teacher(self):
        if self.teacher is None:
            raise ValueError("teacher is required (e.g. gfn2, pyscf)")
        if self.finetune.init is not None:
            raise ValueError("finetune.init is set by active learning (pretrained, then the last committee)")
        return self


# --------------------------------------------------------------------------- stages


def prepare_data(config: ALConfig, folder: Path) -> dict:
    """First labels and validation frames (split off the labels when no ``valid`` is given)."""
    labels = read_frames(config.labels)
    if config.valid is not None:
        valid = read_frames(config.valid)
    else:
        n_valid = max(1, round(0.1 * len(labels)))
        if len(labels) - n_valid < 2:
            raise ConfigError(f"{config.labels}: {len(labels)} labelled frame(s); at least 3 are needed "
                              "(2 to train, 1 to validate) or a separate 'valid' file")
        valid, labels = split(labels, [n_valid, len(labels) - n_valid], seed=config.seed)
    out = {"initial": str(write_frames(folder / "initial.extxyz", labels)),
           "valid": str(write_frames(folder / "valid.extxyz", valid)), "n_initial": len(labels)}
    if config.test is not None:
        out["test"] = str(write_frames(folder / "test.extxyz", read_frames(config.test)))
    return out


def train_round(config: ALConfig, folder: Path, label_files: list[str], data: dict, init: str | None,
                progress: bool) -> dict:
    """The round's committee on all labels so far; its validation and test errors."""
    from ffpt.training.committee import train_committee
    from ffpt.training.config import TrainConfig

    labels = [f for path in label_files for f in read_frames(path)]
    train_path = write_frames(folder / "labels.extxyz", labels)
    start = init or (str(config.pretrained) if config.pretrained is not None else None)
    training = config.training.model_copy(update={
        "stage": "finetune" if start else "scratch", "seed": config.seed,
        "progress_bar": config.training.progress_bar and progress})
    result = train_committee(TrainConfig(
        data={"train": train_path, "valid": data["valid"]}, model=config.model, training=training,
        finetune=config.finetune.model_copy(update={"init": start}), committee=config.committee,
        out=folder / "committee"))
    out = {"committee": str(result.model_path), "n_labels": len(labels), "valid": _errors(result.metrics)}
    if "test" in data:
        out["test"] = committee_errors(result.model_path, read_frames(data["test"]))
    return out


def _errors(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k != "members"}


def committee_errors(committee_file, frames) -> dict:
    """Errors of the committee mean on ``frames`` (meV/atom, meV/A; see :mod:`ffpt.observables.errors`)."""
    import ffpt
    from ffpt.models.inference import calculator_predictions
    from ffpt.observables.errors import error_table

    return error_table(frames, *calculator_predictions(ffpt.load_calculator(committee_file), frames)).as_dict()


def _explore_run(kind: str, job: dict, out: Path) -> dict:
    """One exploration run (a task): ``kind`` md or metad; returns its stability record."""
    from ffpt.data.io import read_structure

    if kind == "md":
        from ffpt.jobs.md import CalculatorSpec
        from ffpt.simulate.md import run_md

        config = MDConfig.model_validate(job)
        result = run_md(read_structure(config.structure, config.structure_index), CalculatorSpec(config.calculator)(),
                        config, out, progress=False)
        return result.as_dict()
    from ffpt.jobs.metad import run_metad_job

    run_metad_job(MetadConfig.model_validate(job), out, progress=False)
    return json.loads((out / STABILITY_FILE).read_text())


def _explore_group(jobs: list[dict], outs: list[Path]) -> list[dict]:
    """Exploration MD runs of one structure and temperature as batched replicas (a task: ``explore.md.batch``);
    returns their stability records."""
    from ffpt.data.io import read_structure
    from ffpt.jobs.md import CalculatorSpec, run_replica_group

    configs = [MDConfig.model_validate(job) for job in jobs]
    first = configs[0]
    structure = read_structure(first.structure, first.structure_index)
    results = run_replica_group([structure] * len(configs), CalculatorSpec(first.calculator), configs, outs)
    return [r.as_dict() for r in results]


def _explore_records(kind: str, calls: list[tuple], batch: int | None, executor: cf.Executor | None) -> list[dict]:
    """Stability records of every exploration run of ``calls`` (kind, job, folder), one task per run, or
    with ``batch`` (MD only) one task per group of at most ``batch`` runs of one structure and temperature."""
    from ffpt.execution import InlineExecutor, completed

    pool = executor or InlineExecutor()
    records: list[dict] = [None] * len(calls)  # type: ignore[list-item]
    if kind != "md" or batch is None:
        for index, record in completed(pool, _explore_run, calls):
            records[index] = record
        return records
    groups: dict[tuple, list[int]] = {}
    for index, (_, job, _) in enumerate(calls):
        groups.setdefault((job["structure"], job["temperature_K"]), []).append(index)
    chunks = [members[k:k + batch] for members in groups.values() for k in range(0, len(members), batch)]
    tasks = [([calls[i][1] for i in chunk], [calls[i][2] for i in chunk]) for chunk in chunks]
    for index, group in completed(pool, _explore_group, tasks):
        for i, record in zip(chunks[index], group):
            records[i] = record
    return records


def explore_round(config: ActiveLearningSettings, folder: Path, committee: str, round_index: int,
                  executor: cf.Executor | None, starts: dict[str, Path] | None = None) -> dict:
    """Committee MD from every start (name -> structure file; default ``explore.structures``) and
    temperature; stability (pooled over starts, and per start) and the saved frames' spreads."""
    from ffpt.analysis.survival import survival_curve
    from ffpt.models.committee import read_committee_file

    e = config.explore
    members = [str(p) for p in read_committee_file(committee)]
    kind = "metad" if e.metad is not None else "md"
    section = e.metad if e.metad is not None else e.md
    calls, names, of_start = [], [], []
    for start, structure in (starts if starts is not None else e.starts(folder)).items():
        for temperature in e.temperatures_K:
            for k in range(e.runs):
                name = f"{start}_T{temperature:g}_seed{k}"
                of_start.append(start)
                job = {**section.model_dump(mode="json", exclude_unset=True), "calculator": members,
                       "structure": str(structure), "temperature_K": temperature,
                       "seed": 1000 * round_index + k}
                calls.append((kind, job, folder / name))
                names.append(name)
    records = _explore_records(kind, calls, e.md.batch if e.metad is None else None, executor)
    runs = [{"name": name, "start": start, **record} for name, start, record in zip(names, of_start, records)]
    survival = survival_curve([r["simulated_fs"] for r in runs], [not r["stable"] for r in runs])
    spreads = [v for r in runs for v in _spreads(folder / r["name"] / "trajectory.extxyz")]
    return {
        "n_runs": survival.n_runs, "n_stable": survival.n_runs - survival.n_failed,
        "stable_fraction": survival.stable_fraction, "stable_fraction_ci95": list(survival.stable_fraction_ci95),
        "median_time_to_failure_fs": survival.median_fs,
        "simulated_fs": float(sum(r["simulated_fs"] for r in runs)),
        "failure_monitors": sorted({r["monitor"] for r in runs if r["monitor"]}),
        "by_start": {start: {"n_runs": len(mine := [r for r in runs if r["start"] == start]),
                             "n_stable": sum(r["stable"] for r in mine)} for start in dict.fromkeys(of_start)},
        "spread": {"n_frames": len(spreads), "median": float(np.median(spreads)) if spreads else None,
                   "p90": float(np.percentile(spreads, 90)) if spreads else None,
                   "values": [round(v, 5) for v in spreads]},
        "runs": runs,
    }


def _spreads(path: Path) -> list[float]:
    from ase.io import iread

    if not path.exists():
        return []
    return [float(a.info[keys.FORCES_STD_MAX]) for a in iread(path) if keys.FORCES_STD_MAX in a.info]


def select_round(config: ActiveLearningSettings, folder: Path, explore: dict, explore_folder: Path,
                 label_files: list[str], limit: int, round_index: int) -> dict:
    """Frames of the round's runs to label (``limit`` at most): writes ``picked.extxyz``."""
    from ase.io import iread

    from ffpt.sampling.selection import SelectionRule, select_frames

    frames, spreads, runs, times = [], [], [], []
    for run in explore["runs"]:
        path = explore_folder / run["name"] / "trajectory.extxyz"
        if not path.exists():
            continue
        for atoms in iread(path):
            if keys.FORCES_STD_MAX not in atoms.info or float(atoms.info.get("time_fs", 0.0)) == 0.0:
                continue  # the start frame is the given structure
            frames.append(atoms)
            spreads.append(float(atoms.info[keys.FORCES_STD_MAX]))
            runs.append(run["name"])
            times.append(float(atoms.info["time_fs"]))
    s = config.select
    rule = SelectionRule(s.lower, s.upper, min(s.max_per_round, limit), s.min_spacing_fs, s.farthest_point)
    labelled = [f for path in label_files for f in read_frames(path)]
    selection = select_frames(frames, spreads, runs, times, rule, labelled)
    picked = [_bare(frames[i], runs[i], round_index) for i in selection.picked]
    out = {**selection.as_dict(), "n_picked": len(picked),
           "picked_spreads": [spreads[i] for i in selection.picked]}
    if picked:
        out["frames"] = str(write_frames(folder / "picked.extxyz", picked))
    return out


def _bare(atoms, run: str, round_index: int):
    """A picked frame to label: geometry, charge and spin, where it came from."""
    from ase import Atoms

    frame = Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    for key in (keys.CHARGE, keys.SPIN):
        if key in atoms.info:
            frame.info[key] = atoms.info[key]
    frame.info.update({keys.CONFIG_TYPE: f"al_round{round_index}", "al_run": run,
                       "time_fs": float(atoms.info["time_fs"]),
                       keys.FORCES_STD_MAX: float(atoms.info[keys.FORCES_STD_MAX])})
    return frame


# The teacher must reproduce a first label this closely, else its new labels would not match the first
# ones (another level of theory, or another energy zero such as energies relative to free atoms)
ENERGY_AGREEMENT = 0.05  # eV/atom
FORCE_AGREEMENT = 0.05  # eV/A, mean absolute difference of the force components


def check_teacher(config: ActiveLearningSettings, folder: Path, data: dict, executor: cf.Executor | None,
                  progress: bool) -> dict:
    """Label the first training frame with the teacher and compare with its label: a
    :class:`ConfigError` (before any training) when they differ beyond :data:`ENERGY_AGREEMENT` or
    :data:`FORCE_AGREEMENT`."""
    from ffpt.teachers.runner import label_frames

    first = read_frames(data["initial"])[0]
    run = label_frames([first], config.teacher, config.teacher_options, folder / "cache", executor=executor,
                       report_path=folder / "failures.json", progress=progress)
    if not run.frames:
        raise ConfigError(f"{data['initial']} frame 0: teacher '{config.teacher}' cannot label it "
                          f"({run.failures[0].reason})")
    ours = run.frames[0]
    energy = (ours.info[keys.ENERGY] - first.info[keys.ENERGY]) / len(first)
    forces = float(np.mean(np.abs(ours.arrays[keys.FORCES] - first.arrays[keys.FORCES])))
    if abs(energy) > ENERGY_AGREEMENT or forces > FORCE_AGREEMENT:
        raise ConfigError(
            f"{data['initial']} frame 0: teacher '{config.teacher}' gives {energy:+.4g} eV/atom and a force "
            f"MAE of {forces:.3g} eV/A against its label: new labels would not match the first ones (another "
            "level of theory, or another energy zero, e.g. relative to free atoms; the h2combustion source "
            "takes energy_zero: total)")
    return {"energy_difference_ev_per_atom": energy, "forces_mae_ev_per_a": forces}


def label_round(config: ActiveLearningSettings, folder: Path, picked: str, executor: cf.Executor | None,
                progress: bool) -> dict:
    """Teacher labels of the picked frames (cached per frame)."""
    from ffpt.teachers.runner import label_frames

    run = label_frames(read_frames(picked, require_labels=False), config.teacher, config.teacher_options, folder / "cache",
                       executor=executor, report_path=folder / "failures.json", progress=progress)
    if not run.frames:
        raise ConfigError(f"{folder}: the teacher '{config.teacher}' labelled none of the {len(run.failures)} "
                          f"picked frames (see failures.json)")
    return {"labels": str(write_frames(folder / "labels.extxyz", run.frames)), "n_labels": len(run.frames),
            "n_failed": len(run.failures)}


# --------------------------------------------------------------------------- the loop


def run_active_learning(config: ALConfig, out: str | Path, progress: bool = True, *,
                        executor: cf.Executor | None = None, scheduler: str | None = None,
                        echo: Callable[[str], None] = print) -> dict:
    """Run (or resume) the loop into ``out``; writes ``rounds.json``, ``report.md`` and figures and
    returns the summary. MD runs and label tasks go to ``executor``, else to
    :func:`ffpt.execution.executor` (``config.workers``, ``scheduler``; in process for one worker)."""
    from contextlib import ExitStack

    from ffpt.data.io import read_structure

    with ExitStack() as stack:
        stack.enter_context(output_lock(out, "active-learning"))  # one loop at a time per folder
        starts = config.explore.starts(out)
        for structure in starts.values():  # input errors end here, before any training
            read_structure(structure, config.explore.md.structure_index)
        if executor is None and (config.workers > 1 or scheduler is not None):
            from ffpt.execution import executor as open_executor

            executor = stack.enter_context(open_executor(config.workers, scheduler))
        return _loop(config, Path(out), starts, progress, executor, echo)


def _loop(config: ALConfig, out: Path, starts: dict[str, Path], progress: bool, executor, echo) -> dict:
    from ffpt.workflows.al_report import AL_CONFIG_FILE, first_at_target, write_al_report

    run = RunDirectory(out, echo=echo)
    given = config.model_dump(mode="json")
    atomic_write_json(out / AL_CONFIG_FILE, given)
    data = run.stage("data", {k: given[k] for k in ("labels", "valid", "test", "seed")},
                     lambda d: prepare_data(config, d))
    if config.rounds > 0:  # the teacher must reproduce the first labels before any work
        run.stage("teacher_check", {"initial": data["initial"], "teacher": config.teacher,
                                    "teacher_options": config.teacher_options},
                  lambda d: check_teacher(config, d, data, executor, progress))
    label_files, init, rounds = [data["initial"]], None, []
    added, stop = 0, None
    training_inputs = {k: given[k] for k in ("model", "training", "finetune", "committee", "pretrained", "seed")}
    for r in range(config.rounds + 1):
        name = ROUND.format(r)
        trained = run.stage(f"{name}_train", {**training_inputs, "labels": label_files, "valid": data["valid"],
                                              "test": data.get("test"), "init": init},
                            lambda d: train_round(config, d, label_files, data, init, progress))
        explored = run.stage(f"{name}_explore", {"committee": trained["committee"], "explore": given["explore"],
                                                 "round": r},
                             lambda d: explore_round(config, d, trained["committee"], r, executor, starts))
        record = {"round": r, "n_labels": trained["n_labels"], "n_added": added, "valid": trained["valid"],
                  "test": trained.get("test"), **{k: v for k, v in explored.items() if k not in ("runs", "spread")},
                  "spread": {k: v for k, v in explored["spread"].items() if k != "values"},
                  "spread_values": explored["spread"]["values"]}
        rounds.append(record)
        left = math.inf if config.stop.max_labels is None else config.stop.max_labels - added
        target = config.stop.stable_fraction
        if target is not None and explored["stable_fraction"] >= target:
            stop = f"stable fraction {explored['stable_fraction']:.2f} >= {target}"
        elif r == config.rounds:
            stop = f"{config.rounds} rounds of labels added"
        elif left <= 0:
            stop = f"label budget of {config.stop.max_labels} spent"
        if stop:
            break
        selected = run.stage(f"{name}_select", {"explore": explored, "select": given["select"], "labels": label_files,
                                                "limit": left if left != math.inf else None, "round": r},
                             lambda d: select_round(config, d, explored, out / f"{name}_explore", label_files,
                                                    int(min(left, 10**9)), r))
        record["selection"] = {k: v for k, v in selected.items() if k not in ("picked", "frames")}
        if not selected["n_picked"]:
            stop = ("no explored frame above the window's lower edge: the committee agrees everywhere it went"
                    if selected["n_above"] == 0 else
                    f"no frame in the window ({selected['n_above']} above {config.select.upper} eV/A only)")
            break
        labelled = run.stage(f"{name}_label", {"frames": selected["frames"], "teacher": config.teacher,
                                               "teacher_options": config.teacher_options},
                             lambda d: label_round(config, d, selected["frames"], executor, progress))
        record["labelled"] = labelled["n_labels"]
        record["picked"] = picked_summary(read_frames(labelled["labels"]), explored["runs"])
        added += labelled["n_labels"]
        label_files = [*label_files, labelled["labels"]]
        init = trained["committee"]
    summary = {"name": config.name, "arm": "ffpt-ft+al" if config.pretrained else "scratch+al", "stop": stop,
               "rounds": rounds, "labels_added": added, "n_initial": data["n_initial"],
               "final_committee": trained["committee"], "starts": list(starts),
               "picked_species": dict(sum((Counter(r["picked"]["species"]) for r in rounds if "picked" in r),
                                          Counter()).most_common()),
               "labels_to_stable": first_at_target(rounds, config.stop.stable_fraction)}
    return write_al_report(summary, out, given)


def picked_summary(frames, runs: list[dict]) -> dict:
    """What a round's labelled picks hold: per species (Hill formula, covalent connectivity of
    :func:`ffpt.observables.species.species_of`) the number of frames containing it, and the picks per
    start (``runs``: the round's exploration runs, whose names the frames' ``al_run`` give)."""
    from ffpt.observables.species import species_of

    start_of = {r["name"]: r.get("start", r["name"].split("_T")[0]) for r in runs}
    species = Counter(name for atoms in frames for name in species_of(atoms))
    by_start = Counter(start_of.get(atoms.info.get("al_run"), "unknown") for atoms in frames)
    return {"species": dict(sorted(species.items(), key=lambda kv: (-kv[1], kv[0]))),
            "by_start": dict(sorted(by_start.items()))}


def experiment_al_config(experiment, arm: str, labels: str, data: dict, pretrained: str | None) -> ALConfig:
    """The ``ffpt al`` config of one arm of an experiment (its ``active_learning`` section)."""
    a = experiment.active_learning
    settings = a.model_dump(mode="json", exclude_unset=True, exclude={"budget", "arms"})
    teacher = a.teacher or experiment.abinitio.teacher
    options = a.teacher_options if a.teacher else experiment.abinitio.teacher_options
    return ALConfig.model_validate({
        **settings, "name": f"{experiment.name}: {arm}", "teacher": teacher, "teacher_options": options,
        "labels": labels, "valid": data["valid"], "test": data["test"], "pretrained": pretrained,
        "model": experiment.model.model_dump(mode="json"),
        "training": experiment.finetune.model_dump(mode="json") | {"stage": "finetune"},
        "finetune": experiment.finetune_options.model_dump(mode="json"),
    })
