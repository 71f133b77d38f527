"""Label a dataset with a teacher: one task per frame on a Dask cluster, an atomic per-frame cache, resume.

Every result (a label or a recorded :class:`~ffpt.teachers.base.LabelFailure`) is one small JSON
file in the cache, written atomically (:mod:`ffpt.fileio`) by the worker that computed it, under a
key hashing the frame (rounded positions, numbers, cell, pbc, charge, spin) and the teacher (name,
level, options). A run that is killed, or stops on an unexpected error, keeps its cache (every
finished result, on purpose): rerunning it reads the cache first and computes only the frames still
missing. A run refused on bad input (data, teacher, options) writes nothing.

One run at a time per output: :func:`ffpt.fileio.output_lock` holds an exclusive lock on ``<out>.lock`` for the
run; a second run on the same output is refused. The lock dies with its process, so a lock file
left by a killed run never blocks. Tasks run on :func:`ffpt.execution.executor`: the embedded
cluster's worker processes end with the run that started them, also when it is killed; a task
lost with its worker is rerun on another.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import os
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from pydantic import Field, field_validator, model_validator

from ffpt import execution, keys
from ffpt.config import ConfigError
from ffpt.data.formats import DataFormat
from ffpt.data.frames import DataError, set_labels
from ffpt.errors import UserError
from ffpt.execution import completed
from ffpt.fileio import atomic_write_json, check_name_lengths, lock_path, output_lock
from ffpt.teachers import REGISTRY, LabelFailure, Teacher, TeacherInfo, get, register

TEACHER_KEY = keys.TEACHER  # info key of a labelled frame: the teacher's registry name
LEVEL_KEY = "level_of_theory"  # info key of a labelled frame: the teacher's level of theory
POSITION_DECIMALS = 6  # positions and cell are rounded to 1e-6 A in the cache key


@dataclass(frozen=True)
class Failure:
    """A frame that could not be labelled: its index in the input and the reason."""

    index: int
    reason: str


@dataclass
class LabelRun:
    """Outcome of :func:`label_frames`.

    ``frames``: labelled copies of the input frames in input order, failed frames left out;
    ``indices``: input index of each labelled frame; ``n_cached`` / ``n_computed``: unique
    geometries read from the cache / computed in this run.
    """

    frames: list[Atoms]
    indices: list[int]
    failures: list[Failure]
    teacher: TeacherInfo
    n_cached: int
    n_computed: int


class LabelConfig(DataFormat):
    """Settings of ``ffpt label``; unknown keys are errors. ``options`` is the deprecated name of
    ``teacher_options``. Keys and units of ``data`` (extxyz, npz or ASE db): :class:`DataFormat`
    fields (``energy_key``, ``charge_key``, ``spin_key``, ``energy_unit``, ...)."""

    data: Path  # input extxyz (labels not required)
    out: Path  # output extxyz with REF_energy / REF_forces (and REF_stress where the teacher gives one)
    teacher: str  # registry name (pyscf, gfn2, mmff94, ...) or module:factory
    teacher_options: dict[str, Any] = Field(default_factory=dict)  # e.g. {xc: pbe, basis: def2-svp}
    workers: int = Field(1, ge=1)  # processes of the embedded Dask cluster (1: in this process)
    scheduler: str | None = None  # tcp://HOST:PORT or scheduler file of a running Dask cluster
    threads_per_worker: int = Field(1, ge=1)
    cache: Path | None = None  # default: <out stem>.cache next to the output
    failures: Path | None = None  # default: <out stem>.failures.json next to the output
    retry_failed: bool = False
    progress: bool = True

    @field_validator("teacher")
    @classmethod
    def _known_teacher(cls, name: str) -> str:
        teacher_target(name)  # unknown names fail here, before any frame is read
        return name

    @model_validator(mode="before")
    @classmethod
    def _deprecated_options(cls, values):
        if isinstance(values, dict) and "options" in values:
            import warnings

            values = dict(values)
            old = values.pop("options") or {}
            if not isinstance(old, dict):
                raise ValueError("'options' (deprecated name of 'teacher_options') must be a mapping")
            values["teacher_options"] = {**old, **(values.get("teacher_options") or {})}
            warnings.warn("label config key 'options' is deprecated; use 'teacher_options'", FutureWarning,
                          stacklevel=2)
        return values

    def cache_dir(self) -> Path:
        return self.cache or self.out.with_name(self.out.stem + ".cache")

    def failures_path(self) -> Path:
        return self.failures or self.out.with_name(self.out.stem + ".failures.json")

    def config_path(self) -> Path:
        return self.out.with_name(self.out.stem + ".label.yaml")


def teacher_target(name: str) -> str:
    """``"module:factory"`` of a registered teacher name, or ``name`` itself if it has that form."""
    key = name.lower()
    if key in REGISTRY:
        return REGISTRY[key]
    if ":" in name:
        return name
    raise ValueError(f"unknown teacher '{name}'; known: {', '.join(sorted(REGISTRY))} (or give module:factory)")


def build_teacher(name: str, options: dict | None = None) -> Teacher:
    """Teacher from a registry name or a ``module:factory`` path, with backend ``options``."""
    target = teacher_target(name)
    register(name.lower(), target)
    try:
        return get(name, **(options or {}))
    except UserError:  # teachers.get names the teacher and the option
        raise
    except TypeError as exc:  # unknown or malformed option
        raise ValueError(f"teacher '{name}': bad options {options}: {exc}") from exc
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"teacher '{name}': cannot load {target} ({exc})") from exc


def frame_key(atoms: Atoms, teacher: TeacherInfo, decimals: int = POSITION_DECIMALS) -> str:
    """SHA-256 cache key of (geometry, charge, spin) and (teacher name, level, options)."""

    def rounded(x) -> bytes:
        # + 0.0 turns -0.0 into 0.0 so that both hash alike
        return (np.round(np.asarray(x, dtype=np.float64), decimals) + 0.0).tobytes()

    spin = atoms.info.get(keys.SPIN)
    header = {
        "numbers": [int(z) for z in atoms.numbers],
        "pbc": [bool(p) for p in atoms.pbc],
        "charge": float(atoms.info.get(keys.CHARGE, 0)),
        "spin": None if spin is None else float(spin),
        "teacher": teacher.name,
        "level": teacher.level,
        "options": teacher.options,
        "decimals": decimals,
    }
    digest = hashlib.sha256(json.dumps(header, sort_keys=True, default=str).encode())
    digest.update(rounded(atoms.positions))
    digest.update(rounded(atoms.cell.array))
    return digest.hexdigest()


def cache_path(cache_dir: str | os.PathLike, key: str) -> Path:
    """File holding the result of ``key`` (two-character fan-out keeps folders small)."""
    return Path(cache_dir) / key[:2] / f"{key}.json"


def read_cached(path: Path, n_atoms: int) -> dict | None:
    """Cached result at ``path`` or None if absent; an unreadable or mismatched file counts as absent."""
    try:
        entry = json.loads(path.read_text())
    except (OSError, ValueError):  # absent, or not JSON
        return None
    if entry.get("n_atoms") != n_atoms:
        return None
    return entry


def _compute(teacher: Teacher, atoms: Atoms, key: str, cache_dir: Path) -> dict:
    """Label one frame and store the result; a LabelFailure or a DataError (e.g. a spin the teacher
    cannot treat) is stored as a failure entry."""
    entry: dict = {"key": key, "n_atoms": len(atoms), "teacher": teacher.info.as_dict()}
    try:
        label = teacher.label(atoms)
        forces = np.asarray(label.forces, dtype=float).reshape(len(atoms), 3)
        stress = None if label.stress is None else np.asarray(label.stress, dtype=float).reshape(6)
        if not (np.isfinite(label.energy) and np.all(np.isfinite(forces))
                and (stress is None or np.all(np.isfinite(stress)))):
            raise LabelFailure("teacher returned non-finite energy, forces or stress")
    except (LabelFailure, DataError) as exc:  # deterministic: cached, not retried on a rerun
        entry["failure"] = str(exc) or type(exc).__name__
    except Exception as exc:  # noqa: BLE001 - an unexpected error fails this frame, not the run
        # not cached: it may be transient (memory, I/O), so a rerun tries the frame again
        entry["failure"] = f"unexpected {type(exc).__name__}: {exc}"
        return entry
    else:
        entry["energy"] = float(label.energy)
        entry["forces"] = forces.tolist()
        if stress is not None:
            entry["stress"] = stress.tolist()  # eV/A^3, Voigt order
    atomic_write_json(cache_path(cache_dir, key), entry, indent=None)
    return entry


_TEACHERS: dict[tuple, Teacher] = {}  # this process's teacher (one at a time), built on first use


def process_teacher(name: str, options: dict) -> Teacher:
    """The teacher ``name`` with ``options``, built once per process (a Dask worker, or this one)."""
    key = (name, teacher_target(name), json.dumps(options, sort_keys=True, default=str))
    if key not in _TEACHERS:
        _TEACHERS.clear()
        _TEACHERS[key] = build_teacher(name, options)
    return _TEACHERS[key]


def _label_task(name: str, options: dict, atoms: Atoms, key: str, cache_dir: Path) -> dict:
    """One frame, run where the executor puts it: the worker writes the cache entry itself.

    A stored result is returned as it is: Dask reruns a finished task whose result died with its
    worker before the client fetched it, and that must not call the teacher twice."""
    entry = read_cached(cache_path(cache_dir, key), len(atoms))
    return entry if entry is not None else _compute(process_teacher(name, options), atoms, key, cache_dir)


def _bare(atoms: Atoms) -> Atoms:
    """Copy of a frame without calculator or earlier labels, as sent to a teacher."""
    clean = Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    clean.info = {k: v for k, v in atoms.info.items() if k in (keys.CHARGE, keys.SPIN)}
    return clean


def label_frames(
    frames: Sequence[Atoms],
    teacher_name: str,
    teacher_options: dict | None,
    cache_dir: str | os.PathLike,
    workers: int = 1,
    *,
    scheduler: str | None = None,
    executor: cf.Executor | None = None,
    threads_per_worker: int = 1,
    retry_failed: bool = False,
    report_path: str | os.PathLike | None = None,
    progress: bool = True,
    source: str | None = None,
) -> LabelRun:
    """Label ``frames`` with a teacher, reusing and filling the cache in ``cache_dir``.

    Frames run as tasks on ``executor`` (any ``concurrent.futures.Executor``) if given, else on
    :func:`ffpt.execution.executor` (``workers``, ``scheduler``, ``threads_per_worker``): in this
    process for one worker, an embedded Dask cluster, or a running scheduler. Each worker builds
    its teacher once and writes each result to the cache itself, so finished frames survive a
    dead worker or client; Dask reruns a task lost with its worker. Identical geometries are
    labelled once. Failures recorded in the cache are reused unless
    ``retry_failed``. A JSON report of failures is written to ``report_path`` if given. A periodic
    frame given to a teacher of isolated molecules is refused before any work (a DataError naming
    ``source``, the frames' file, and the frame's index).
    """
    from tqdm.auto import tqdm

    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    options = dict(teacher_options or {})
    teacher = process_teacher(teacher_name, options)
    info = teacher.info
    check_cell = getattr(teacher, "check_cell", None)  # a per-molecule teacher refuses periodic frames
    for index, atoms in enumerate(frames if check_cell is not None else ()):
        try:
            check_cell(atoms)
        except DataError as exc:  # the input, not one frame's bad luck: refused before any work
            raise DataError(f"{source or 'input'} frame {index}: {exc}") from None
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)

    keys = [frame_key(atoms, info) for atoms in frames]
    results: dict[str, dict] = {}
    todo: dict[str, Atoms] = {}
    for atoms, key in zip(frames, keys):
        if key in results or key in todo:
            continue
        entry = read_cached(cache_path(cache_dir, key), len(atoms))
        if entry is not None and not (retry_failed and "failure" in entry):
            results[key] = entry
        else:
            if entry is not None:  # a failure to retry: the task must not read it back
                cache_path(cache_dir, key).unlink()
            todo[key] = _bare(atoms)
    n_cached = len(results)

    bar = tqdm(total=n_cached + len(todo), initial=n_cached, desc=f"label [{info.name}]", unit="frame",
               disable=not progress)
    calls = [(teacher_name, options, atoms, key, cache_dir) for key, atoms in todo.items()]
    try:
        if calls:
            with nullcontext(executor) if executor is not None else execution.executor(
                min(workers, len(calls)), scheduler, threads_per_worker
            ) as pool:
                for _, entry in completed(pool, _label_task, calls):
                    results[entry["key"]] = entry
                    bar.update()
    finally:
        bar.close()

    labelled, indices, failures = [], [], []
    for index, (atoms, key) in enumerate(zip(frames, keys)):
        entry = results[key]
        if "failure" in entry:
            failures.append(Failure(index=index, reason=entry["failure"]))
            continue
        out = atoms.copy()
        out.calc = None
        set_labels(out, entry["energy"], np.asarray(entry["forces"]),
                   None if "stress" not in entry else np.asarray(entry["stress"]))
        out.info[TEACHER_KEY] = info.name
        out.info[LEVEL_KEY] = info.level
        labelled.append(out)
        indices.append(index)
    run = LabelRun(labelled, indices, failures, info, n_cached=n_cached, n_computed=len(todo))
    if report_path is not None:
        atomic_write_json(report_path, failure_report(run, len(frames)))
    return run


def failure_report(run: LabelRun, n_frames: int) -> dict:
    """JSON-ready summary of a run: teacher, counts and each failed frame with its reason."""
    return {
        "teacher": run.teacher.as_dict(),
        "n_frames": n_frames,
        "n_labelled": len(run.frames),
        "n_failed": len(run.failures),
        "failures": [asdict(f) for f in run.failures],
    }


def label_dataset(config: LabelConfig) -> tuple[LabelRun, int]:
    """Run a :class:`LabelConfig`: read ``data``, label, write ``out``, the failure report and the
    resolved config (``<out stem>.label.yaml``). Returns the run and the number of input frames.

    The output is locked for the run (:func:`ffpt.fileio.output_lock`). Nothing is written before the data and
    the teacher are checked; the resolved config is written once the labelling has finished.
    """
    from ffpt.config import save_config
    from ffpt.data import read_frames, write_frames

    check_name_lengths(config.out, lock_path(config.out), config.cache_dir(), config.failures_path(),
                       config.config_path())
    frames = read_frames(config.data, require_labels=False, fmt=config)
    with output_lock(config.out, "ffpt label"):
        run = label_frames(
            frames,
            config.teacher,
            config.teacher_options,
            config.cache_dir(),
            config.workers,
            scheduler=config.scheduler,
            threads_per_worker=config.threads_per_worker,
            retry_failed=config.retry_failed,
            report_path=config.failures_path(),
            progress=config.progress,
            source=str(config.data),
        )
        if run.frames:
            write_frames(config.out, run.frames)
        save_config(config, config.config_path())
    return run, len(frames)
