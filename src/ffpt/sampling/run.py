"""Run a :class:`SamplingConfig`: every (seed, sampler, temperature or width) is one task.

Each finished task is written atomically to ``<out>.parts/``; a rerun after a kill skips them.
Each task draws from its own random stream (config ``seed`` and the task id), so results do not
depend on which tasks ran before a restart. The output and its resolved config
(``<out stem>.config.yaml``) are written at the end and ``<out>.parts/`` is removed.
"""

from __future__ import annotations

import json
import multiprocessing
import re
import shutil
import zlib
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from ase import Atoms
from tqdm import tqdm

from ffpt.data.frames import DataError
from ffpt.data.io import read_frames, write_frames
from ffpt.sampling.config import SamplingConfig, SeedSpec
from ffpt.sampling.displacements import random_frames
from ffpt.sampling.md import md_frames
from ffpt.sampling.normal_modes import normal_mode_frames, normal_modes
from ffpt.sampling.seeds import Seed, from_combustion, from_file, from_smiles, split_molecules


@dataclass(frozen=True)
class Task:
    """One unit of work: ``n_frames`` from sampler ``kind`` at ``value`` (K or A) around seed ``seed_index``."""

    seed_index: int
    seed_name: str
    kind: str  # "md", "nm" or "random"
    value: float
    n_frames: int

    @property
    def id(self) -> str:
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.seed_name)
        return f"{self.seed_index:04d}_{safe}_{self.kind}_{self.value:g}"

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


def plan(config: SamplingConfig, seeds: list[Seed]) -> list[Task]:
    """All tasks of ``config`` for ``seeds`` that ask for frames, in output order."""
    tasks = []
    for k, s in enumerate(seeds):
        if config.md is not None:
            tasks += [Task(k, s.name, "md", t, config.md.frames) for t in config.md.temperatures]
        if config.normal_modes is not None:
            nm = config.normal_modes
            tasks += [Task(k, s.name, "nm", t, nm.frames) for t in nm.temperatures]
        if config.random is not None:
            tasks += [Task(k, s.name, "random", w, config.random.frames) for w in config.random.sigmas]
    return [t for t in tasks if t.n_frames > 0]


def config_path(out: Path) -> Path:
    """Where the resolved config of output ``out`` is saved."""
    return out.with_name(out.stem + ".config.yaml")


def _resolved(config: SamplingConfig) -> dict:
    return config.model_dump(mode="json")


def _parts_dir(config: SamplingConfig) -> Path:
    parts = config.out.with_name(config.out.name + ".parts")
    stamp = parts / "config.json"
    resolved = json.dumps(_resolved(config), sort_keys=True)
    if stamp.exists():
        if stamp.read_text() != resolved:
            raise DataError(f"{parts}: holds tasks of a different sampling config; remove it or rerun that config")
    else:
        parts.mkdir(parents=True, exist_ok=True)
        tmp = stamp.with_suffix(".tmp")
        tmp.write_text(resolved)
        tmp.replace(stamp)
    return parts


def sample(config: SamplingConfig, progress: bool = True, workers: int = 1) -> Path:
    """Run ``config`` and return the path of the labelled extxyz it wrote (``config.out``).

    ``workers`` > 1 runs tasks in that many processes; the output is the same as with one.
    """
    from ffpt import teachers

    out = Path(config.out)
    saved = config_path(out)
    if out.exists() and saved.exists() and yaml.safe_load(saved.read_text()) == _resolved(config):
        return out  # finished earlier with the same config
    teacher = teachers.get(config.teacher, **config.teacher_options)
    seeds = load_seeds(config.seeds, config.seed)
    if config.split:
        seeds = [part for s in seeds for part in split_molecules(s)]
    tasks = plan(config, seeds)
    parts = _parts_dir(config)
    results: dict[str, list[Atoms]] = {}
    with tqdm(total=sum(t.n_frames for t in tasks), desc="sampling", unit="frame", disable=not progress) as bar:
        pending = []
        for task in tasks:
            part = parts / f"{task.id}.extxyz"
            if part.exists():
                results[task.id] = read_frames(part)
                bar.update(task.n_frames)
            else:
                pending.append((task, part))
        if workers > 1 and len(pending) > 1:
            context = multiprocessing.get_context("spawn")  # no fork of a process holding RDKit/OpenMM state
            with ProcessPoolExecutor(workers, mp_context=context) as pool:
                futures = {
                    pool.submit(_run_and_save, task, seeds[task.seed_index], teacher, config, part): task
                    for task, part in pending
                }
                for future in as_completed(futures):
                    results[futures[future].id] = future.result()
                    bar.update(futures[future].n_frames)
        else:
            modes: dict = {}
            for task, part in pending:
                results[task.id] = _run_and_save(task, seeds[task.seed_index], teacher, config, part, modes, bar.update)
    write_frames(out, [frame for task in tasks for frame in results[task.id]])
    tmp = saved.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(_resolved(config), sort_keys=False))
    tmp.replace(saved)
    shutil.rmtree(parts)
    return out


def _run_and_save(
    task: Task, seed: Seed, teacher, config: SamplingConfig, part: Path, modes: dict | None = None, update=None
) -> list[Atoms]:
    """Run one task and write its frames atomically to ``part``."""
    frames = _run_task(task, seed, teacher, config, {} if modes is None else modes, update)
    write_frames(part, frames)
    return frames


def _run_task(task: Task, seed: Seed, teacher, config: SamplingConfig, modes: dict, update) -> list[Atoms]:
    rng = task.rng(config.seed)
    if task.kind == "md":
        md = config.md
        return md_frames(
            seed.atoms, teacher, task.value, task.n_frames, rng, reference=seed.reference, stride=md.stride,
            timestep=md.timestep, friction=md.friction, equilibration=md.equilibration, overlap=md.overlap,
            progress=update,
        )
    if task.kind == "nm":
        if task.seed_index not in modes:
            nm = config.normal_modes
            modes[task.seed_index] = normal_modes(
                seed.atoms, teacher, reference=seed.reference, optimize=nm.optimize, delta=nm.delta
            )
        return normal_mode_frames(
            modes[task.seed_index], teacher, task.value, task.n_frames, rng,
            overlap=config.normal_modes.overlap, progress=update,
        )
    return random_frames(
        seed.atoms, teacher, task.value, task.n_frames, rng, reference=seed.reference,
        overlap=config.random.overlap, progress=update,
    )
