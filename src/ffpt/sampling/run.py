"""Run a :class:`SamplingConfig`: every (seed, sampler, temperature or width, density) is one task.

Tasks run on :func:`ffpt.execution.executor` (in this process, an embedded Dask cluster of
``workers`` processes, or a running ``scheduler``) or on any ``concurrent.futures.Executor``.
Each finished task is written atomically to ``<out>.parts/`` by the worker that ran it; a rerun
after a kill skips them, and Dask reruns a task lost with its worker.
Each task draws from its own random stream (config ``seed`` and the task id), so results do not
depend on which tasks ran before a restart. The output and its resolved config
(``<out stem>.config.yaml``) are written at the end and ``<out>.parts/`` is removed.

``<out>.parts/`` is created only once the teacher and the seeds are loaded. A run stopped by bad
input (a :class:`~ffpt.errors.UserError`, e.g. a non-finite frame, or a
:class:`~ffpt.teachers.LabelFailure`, e.g. an untypable molecule) removes the parts folder it
created; a run that is killed or stops on any other error keeps it, to be resumed. The output is
locked for the run (``<out>.lock``), so two runs cannot write it at once.

Lone atoms are not sampled (one atom has no geometry to vary): they are skipped with a note on
stderr naming their seed, and a config whose seeds are all lone atoms is refused.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import re
import shutil
import sys
import zlib
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from ase import Atoms
from tqdm import tqdm

from ffpt import execution
from ffpt.config import ConfigError, save_config
from ffpt.data.frames import DataError, validate_frame
from ffpt.data.io import read_frames, write_frames
from ffpt.errors import UserError
from ffpt.fileio import absolute_paths, atomic_write_text, check_name_lengths, lock_path, output_lock
from ffpt.sampling.config import SamplingConfig, SeedSpec
from ffpt.sampling.compressed import compressed_frames
from ffpt.sampling.crowded import crowded_frames, crowded_rng
from ffpt.sampling.density_range import DENSITY_KEY, frames_per_density, rescale_to_density
from ffpt.sampling.displacements import random_frames
from ffpt.sampling.md import md_frames
from ffpt.sampling.normal_modes import normal_mode_frames, normal_modes
from ffpt.sampling.seeds import Seed, from_combustion, from_file, from_smiles, split_molecules
from ffpt.teachers.base import LabelFailure


@dataclass(frozen=True)
class Task:
    """One unit of work: ``n_frames`` from sampler ``kind`` at ``value`` (K or A) around seed
    ``seed_index``, rescaled to mass density ``density`` (g/cm^3) first when given."""

    seed_index: int
    seed_name: str
    kind: str  # "md", "nm", "random" or "compressed"
    value: float
    n_frames: int
    density: float | None = None

    @property
    def id(self) -> str:
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.seed_name)
        rho = "" if self.density is None else f"_rho{self.density:g}"
        return f"{self.seed_index:04d}_{safe}_{self.kind}_{self.value:g}{rho}"

    def rng(self, seed: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(self.id.encode())]))


def load_seeds(specs: list[SeedSpec], seed: int = 0) -> list[Seed]:
    """Seeds of every spec, in order (SMILES are embedded with ``seed``)."""
    seeds: list[Seed] = []
    for spec in specs:
        if spec.smiles is not None:
            seeds.append(from_smiles(spec.smiles, seed=seed, name=spec.name))
        elif spec.file is not None:
            seeds.extend(from_file(spec.file, spec.index, spec.isolate, spec.max_molecules, spec.name))
        else:
            seeds.extend(from_combustion(spec.combustion, spec.channels, tuple(spec.kinds), spec.topology))
    return seeds


def sampled_seeds(seeds: list[Seed], split: bool = True) -> list[Seed]:
    """The seeds to sample: each seed, or each of its molecules if ``split``, without lone atoms.

    Every seed that loses atoms gets a one-line note on stderr; raises :class:`DataError` naming
    the seeds if nothing but lone atoms remains.
    """
    kept: list[Seed] = []
    for seed in seeds:
        parts = [p for p in (split_molecules(seed) if split else [seed]) if len(p.atoms) > 1]
        lone = len(seed.atoms) - sum(len(p.atoms) for p in parts)
        if lone:
            what = f"its lone atom {seed.atoms.get_chemical_formula()}" if not parts else f"{lone} lone atom(s)"
            print(f"ffpt sample: seed {seed.name}: skipping {what} (one atom has nothing to sample)", file=sys.stderr)
        kept += parts
    if not kept:
        raise DataError(f"seed(s) {', '.join(s.name for s in seeds)}: nothing to sample, only lone atoms")
    return kept


def plan(config: SamplingConfig, seeds: list[Seed]) -> list[Task]:
    """All tasks of ``config`` for ``seeds`` that ask for frames, in output order.

    With ``md.densities`` every seed must be periodic in all three directions (else a
    :class:`ConfigError` naming the key) and each temperature's frames are split over the densities.
    """
    densities = None if config.md is None else config.md.densities
    if densities:
        flat = [s.name for s in seeds if not s.atoms.pbc.all()]
        if flat:
            raise ConfigError(f"md.densities: seed {flat[0]} is not a periodic box; a density range rescales "
                              "periodic boxes (give the box with isolate: false and split: false)")
    tasks = []
    for k, s in enumerate(seeds):
        if config.md is not None:
            for t in config.md.temperatures:
                if densities:
                    counts = frames_per_density(config.md.frames, len(densities))
                    tasks += [Task(k, s.name, "md", t, n, rho) for rho, n in zip(densities, counts)]
                else:
                    tasks.append(Task(k, s.name, "md", t, config.md.frames))
        if config.normal_modes is not None:
            nm = config.normal_modes
            tasks += [Task(k, s.name, "nm", t, nm.frames) for t in nm.temperatures]
        if config.random is not None:
            tasks += [Task(k, s.name, "random", w, config.random.frames) for w in config.random.sigmas]
        if config.compressed is not None:
            tasks.append(Task(k, s.name, "compressed", config.compressed.min_factor, config.compressed.frames))
    return [t for t in tasks if t.n_frames > 0]


def config_path(out: Path) -> Path:
    """Where the resolved config of output ``out`` is saved."""
    return out.with_name(out.stem + ".config.yaml")


EXECUTION_KEYS = {"workers", "scheduler"}  # where tasks run, not what they compute


def _resolved(config: SamplingConfig) -> dict:
    """What the output depends on, paths absolute (the same config from any working directory)."""
    return absolute_paths(config).model_dump(mode="json", exclude=EXECUTION_KEYS)


def _as_resolved(values: dict) -> dict | None:
    """A recorded config as :func:`_resolved` gives it now (relative paths of older records taken from
    here); ``None`` if it no longer validates."""
    try:
        return _resolved(SamplingConfig.model_validate(values))
    except ValueError:  # pydantic's ValidationError
        return None


def _parts_dir(config: SamplingConfig) -> Path:
    parts = config.out.with_name(config.out.name + ".parts")
    stamp = parts / "config.json"
    resolved = _resolved(config)
    if stamp.exists():
        if _as_resolved(json.loads(stamp.read_text())) != resolved:
            raise DataError(f"{parts}: holds tasks of a different sampling config; remove it or rerun that config")
    else:
        atomic_write_text(stamp, json.dumps(resolved, sort_keys=True))
    return parts


def _finished_with(saved: Path) -> dict | None:
    values = yaml.safe_load(saved.read_text()) or {}
    return _as_resolved({key: value for key, value in values.items() if key not in EXECUTION_KEYS})


def sample(
    config: SamplingConfig, progress: bool = True, workers: int | None = None, *,
    scheduler: str | None = None, executor: cf.Executor | None = None,
) -> Path:
    """Run ``config`` and return the path of the labelled extxyz it wrote (``config.out``).

    Tasks run on ``executor`` if given, else on :func:`ffpt.execution.executor` with ``workers``
    and ``scheduler`` (default: ``config.workers``, ``config.scheduler``); the output is the same
    wherever they run.
    """
    from ffpt import teachers

    out = Path(config.out)
    saved = config_path(out)
    check_name_lengths(out, saved, lock_path(out), out.with_name(out.name + ".parts"))
    if out.exists() and saved.exists() and _finished_with(saved) == _resolved(config):
        return out  # finished earlier with the same config
    teacher = teachers.get(config.teacher, **config.teacher_options)
    seeds = sampled_seeds(load_seeds(config.seeds, config.seed), config.split)
    tasks = plan(config, seeds)
    with output_lock(out, "ffpt sample"):
        parts = config.out.with_name(config.out.name + ".parts")
        resumed = parts.exists()
        try:
            with nullcontext(executor) if executor is not None else execution.executor(
                workers or config.workers, scheduler or config.scheduler
            ) as pool:
                results = _run_tasks(tasks, seeds, teacher, config, _parts_dir(config), progress, pool)
        except (UserError, LabelFailure):  # bad input: rerunning the same config cannot resume it
            if not resumed:
                shutil.rmtree(parts, ignore_errors=True)
            raise
        frames = [frame for task in tasks for frame in results[task.id]]
        write_frames(out, frames + _crowded(frames, config))
        save_config(config, saved)
        shutil.rmtree(parts)
    return out


def _crowded(frames: list[Atoms], config: SamplingConfig) -> list[Atoms]:
    """The crowded frames of ``config`` built from the sampled ``frames`` (none when off)."""
    c = config.crowded
    if c is None or c.frames == 0:
        return []
    return crowded_frames(frames, c.frames, c.molecules, crowded_rng(config.seed), c.min_distance, c.shell)


def _run_tasks(
    tasks: list[Task], seeds: list[Seed], teacher, config: SamplingConfig, parts: Path, progress: bool,
    pool: cf.Executor,
) -> dict[str, list[Atoms]]:
    """Frames of every task by task id: read from ``parts`` if finished earlier, else computed on
    ``pool`` and saved; the bar counts the frames of finished tasks."""
    results: dict[str, list[Atoms]] = {}
    with tqdm(total=sum(t.n_frames for t in tasks), desc="sampling", unit="frame", disable=not progress) as bar:
        pending = []
        for task in tasks:
            part = parts / f"{task.id}.extxyz"
            if part.exists():
                results[task.id] = read_frames(part)
                bar.update(task.n_frames)
            else:
                pending.append((task, seeds[task.seed_index], teacher, config, part))
        for index, frames in execution.completed(pool, _run_and_save, pending):
            task = pending[index][0]
            results[task.id] = frames
            bar.update(task.n_frames)
    return results


def _run_and_save(task: Task, seed: Seed, teacher, config: SamplingConfig, part: Path) -> list[Atoms]:
    """Run one task and write its frames atomically to ``part``; a non-finite frame raises DataError naming it."""
    frames = _run_task(task, seed, teacher, config)
    for k, frame in enumerate(frames):
        validate_frame(frame, source=f"seed {seed.name}, {task.kind} {task.value:g}", index=k, min_distance=0)
    write_frames(part, frames)
    return frames


_MODES: dict[str, object] = {}  # normal modes of the last seed this process analysed, by content key


def _seed_modes(seed: Seed, teacher, config: SamplingConfig):
    """Normal modes of ``seed``, computed once per process for the tasks of one seed."""
    nm = config.normal_modes
    digest = hashlib.sha256(json.dumps([teacher.info.as_dict(), nm.optimize, nm.delta], default=str).encode())
    for array in (seed.atoms.numbers, seed.atoms.positions, seed.atoms.cell.array):
        digest.update(np.ascontiguousarray(array).tobytes())
    key = digest.hexdigest()
    if key not in _MODES:
        _MODES.clear()
        _MODES[key] = normal_modes(seed.atoms, teacher, reference=seed.reference, optimize=nm.optimize, delta=nm.delta)
    return _MODES[key]


def _run_task(task: Task, seed: Seed, teacher, config: SamplingConfig) -> list[Atoms]:
    rng = task.rng(config.seed)
    if task.kind == "md":
        md = config.md
        box = seed.atoms if task.density is None else rescale_to_density(seed.atoms, task.density, seed.reference)
        frames = md_frames(
            box, teacher, task.value, task.n_frames, rng, reference=seed.reference, stride=md.stride,
            timestep=md.timestep, friction=md.friction, equilibration=md.equilibration, overlap=md.overlap,
        )
        if task.density is not None:
            for frame in frames:
                frame.info[DENSITY_KEY] = task.density
                frame.info["config_type"] += f"_rho{task.density:g}"
        return frames
    if task.kind == "nm":
        return normal_mode_frames(
            _seed_modes(seed, teacher, config), teacher, task.value, task.n_frames, rng,
            overlap=config.normal_modes.overlap,
        )
    if task.kind == "compressed":
        c = config.compressed
        return compressed_frames(
            seed.atoms, teacher, task.n_frames, rng, reference=seed.reference, min_factor=c.min_factor,
            max_factor=c.max_factor, nonbonded=c.nonbonded,
        )
    return random_frames(
        seed.atoms, teacher, task.value, task.n_frames, rng, reference=seed.reference,
        overlap=config.random.overlap,
    )
