"""FFPT-FT vs scratch, end to end, as cached stages of one run directory.

seeds -> FF sampling (isolated molecules) -> pretrain (per architecture and arm seed) -> ab initio
labels -> for each budget and arm seed: for each architecture finetune (from its pre-trained model)
and scratch, and optionally MACE trained by ``mace_run_train`` (arm ``mace-cli``), all on the same
frames -> errors on a held-out ab initio test set -> MD stability batches (every arm seed's model at
each stability budget) -> (metadynamics) -> report. On a parallel executor each model's chain of
stages runs as one task (:func:`run_chains`), chains side by side.
"""

from __future__ import annotations

import concurrent.futures as cf
import re
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from ffpt import keys
from ffpt.config import ConfigError
from ffpt.data.frames import DataError
from ffpt.data.io import read_frames, write_frames
from ffpt.data.splits import split, subset
from ffpt.execution import InlineExecutor
from ffpt.fileio import atomic_write_json, output_lock
from ffpt.workflows.combustion_starts import combustion_starts, groups_of, listed as _listed
from ffpt.workflows.config import ARM_KINDS, REFERENCE_ARM, ArchitectureRun, ExperimentConfig, temperature_name
from ffpt.workflows.stages import RunDirectory

ARMS = ARM_KINDS  # the arms of the first architecture

# The fields each section had when experiment stages were first keyed: always part of a stage's key.
# A field added since enters the key only when it differs from its default, so a new training option
# nobody uses leaves the stages of existing run folders finished (tests/test_workflow_keys.py).
KEYED_FIELDS = {
    "ModelConfig": ("architecture", "cutoff", "n_features", "n_layers", "n_basis", "dtype", "options"),
    "TrainingConfig": ("stage", "max_epochs", "max_time_minutes", "batch_size", "lr", "weight_decay", "energy_weight",
                       "forces_weight", "stress_weight", "huber_delta", "fit_prior", "ema_decay", "grad_clip",
                       "lr_factor", "lr_patience", "early_stopping_patience", "seed", "accelerator", "devices",
                       "num_nodes", "strategy", "progress_bar"),
    "FinetuneConfig": ("init", "refit_references", "reset_head", "freeze", "lr", "replay"),
}


def _given(section) -> dict:
    """The keys a config section was given (JSON values): stage inputs stay as the YAML wrote them."""
    return section.model_dump(mode="json", exclude_unset=True)


def keyed(section) -> dict:
    """A model, training or fine-tuning section as a stage input: every field of :data:`KEYED_FIELDS`,
    any later one only where it differs from its default."""
    values = section.model_dump(mode="json")
    defaults = type(section)().model_dump(mode="json")
    always = KEYED_FIELDS[type(section).__name__]
    return {k: v for k, v in values.items() if k in always or v != defaults.get(k)}


def ff_sampling_inputs(config: ExperimentConfig) -> dict:
    """The key of the force-field sampling stage: seeds and pre-training samplers as written."""
    return {"seeds": [_given(s) for s in config.seeds], "pretraining": _given(config.pretraining)}


def abinitio_inputs(config: ExperimentConfig) -> dict:
    """The key of the ab initio labels: the abinitio section, seeds, samplers and the largest budget
    (the labels are expensive: nothing else may enter it)."""
    abinitio = {**config.abinitio.model_dump(mode="json"), "sampling": _given(config.abinitio.sampling)}
    return {"abinitio": abinitio, **ff_sampling_inputs(config), "budgets": max(config.budgets)}


def stability_settings(config: ExperimentConfig) -> dict:
    """The stability section as part of each MD batch's key (the MD options as written; an extra
    temperature's batch is keyed by its own config, :meth:`ExperimentConfig.at_temperature`)."""
    exclude = {"budgets", "exported", "export_dtype", "batch", "extra_temperatures"}
    return {**config.stability.model_dump(mode="json", exclude=exclude),
            "md": _given(config.stability.md)}


def pretrain_inputs(settings: ArchitectureRun, ff: dict) -> dict:
    """The key of one architecture's pre-training stage (one per arm seed)."""
    return {"ff": ff, "model": keyed(settings.model), "training": keyed(settings.pretrain)}


def arm_inputs(settings: ArchitectureRun, kind: str, budget: int, seed: int, data: dict, init: str | None) -> dict:
    """The key of one ffpt arm's training stage: ``kind`` ffpt-ft (from ``init``) or scratch."""
    return {"model": keyed(settings.model), "data": data, "arm": settings.arm(kind), "budget": budget, "seed": seed,
            "init": init, "training": keyed(settings.finetune),
            "finetune": keyed(settings.finetune_options) if init else None}


def reference_inputs(config: ExperimentConfig, budget: int, seed: int, data: dict) -> dict:
    """The key of one ``mace_run_train`` reference stage."""
    return {"data": data, "arm": REFERENCE_ARM, "budget": budget, "seed": seed,
            "recipe": config.mace_reference.model_dump(mode="json")}


def _sampling(config: ExperimentConfig, out: Path, over=None):
    """``pretraining`` with the seeds, ``over``'s given keys laid over it, writing to ``out``."""
    from ffpt.sampling.config import SamplingConfig

    values = {**config.pretraining.model_dump(mode="json"), "seeds": [_given(s) for s in config.seeds]}
    if over is not None:
        values.update(_given(over))
    return SamplingConfig.model_validate({**values, "out": str(out)})


def ff_sampling(config: ExperimentConfig, folder: Path, progress: bool, executor: cf.Executor | None = None) -> dict:
    from ffpt.sampling.run import sample

    path = sample(_sampling(config, folder / "ff.extxyz"), progress=progress, executor=executor)
    return {"frames": str(path), "n_frames": len(read_frames(path))}


def train_stage(config: ExperimentConfig, folder: Path, train_path: str, valid_path: str | None,
                stage: str, seed: int, init: str | None = None, progress: bool = True,
                settings: ArchitectureRun | None = None) -> dict:
    """Train one model of ``settings``' architecture (default: the first) in ``folder``."""
    from ffpt.training.config import TrainConfig
    from ffpt.training.stages import train

    settings = settings or config.architecture_runs[0]
    training = settings.pretrain if stage == "pretrain" else settings.finetune
    data = {"train": train_path, "valid": valid_path} if valid_path else {"train": train_path, "valid_fraction": 0.05}
    finetune = settings.finetune_options.model_dump() | {"init": init}
    cfg = TrainConfig.model_validate({
        "data": data,
        "model": settings.model.model_dump(),
        "training": training.model_dump() | {"stage": stage, "seed": seed,
                                             "progress_bar": training.progress_bar and progress},
        "finetune": finetune if stage == "finetune" else {},
        "out": str(folder),
    })
    result = train(cfg)
    return {"model": str(result.model_path), "valid": result.metrics}


def _in_channels(channels):
    """Predicate: a frame's channel is listed (:func:`_listed`)."""
    return lambda f: _listed(f.info[keys.CHANNEL], channels)


def abinitio_data(config: ExperimentConfig, folder: Path, progress: bool, executor: cf.Executor | None = None) -> dict:
    """Writes pool.extxyz (fine-tuning candidates), valid.extxyz and test.extxyz."""
    src = config.abinitio
    largest = max(config.budgets)
    if src.h2combustion is not None:
        from ffpt.systems.h2combustion import load_h2combustion

        h = src.h2combustion
        frames = load_h2combustion(h.root, methods=tuple(h.methods), energy_zero=h.energy_zero)
        if h.test_channels:
            held = _in_channels(h.test_channels)
            test_pool = [f for f in frames if held(f)]
            rest = [f for f in frames if not held(f)]
            if h.train_channels:
                rest = [f for f in rest if _in_channels(h.train_channels)(f)]
            test = subset(test_pool, min(src.n_test, len(test_pool)), seed=src.split_seed)
            valid, pool = split(rest, [src.n_valid, min(largest, len(rest) - src.n_valid)], seed=src.split_seed)
        else:
            test, valid, pool = split(frames, [src.n_test, src.n_valid, largest], seed=src.split_seed)
        failures = []
    else:
        if src.data is not None:
            frames = read_frames(src.data)
            failures = []
        else:
            from ffpt.sampling.run import sample
            from ffpt.teachers.runner import label_frames

            configs_path = sample(_sampling(config, folder / "configs.extxyz", src.sampling), progress=progress,
                                  executor=executor)
            configs = read_frames(configs_path)
            run = label_frames(configs, src.teacher, src.teacher_options, folder / "label_cache",
                               workers=src.workers, executor=executor, report_path=folder / "label_failures.json",
                               progress=progress)
            frames = run.frames
            failures = [f.__dict__ for f in run.failures]
        need = src.n_test + src.n_valid + largest
        if len(frames) < need:
            raise ConfigError(f"{config.name}: {len(frames)} ab initio frames, need {need} "
                              "(abinitio.n_test + abinitio.n_valid + the largest of budgets)")
        test, valid, pool = split(frames, [src.n_test, src.n_valid, len(frames) - src.n_test - src.n_valid],
                                  seed=src.split_seed)
    paths = {name: str(write_frames(folder / f"{name}.extxyz", part))
             for name, part in (("pool", pool), ("valid", valid), ("test", test))}
    if src.teacher is not None:
        paths["configs"] = str(configs_path)
    return {**paths, "n_pool": len(pool), "n_valid": len(valid), "n_test": len(test), "failures": failures}


def budget_frames(config: ExperimentConfig, data: dict, budget: int, seed: int) -> list:
    """The fine-tuning frames of ``budget`` and arm seed ``seed``: the same for every arm."""
    pool = read_frames(data["pool"])
    if budget > len(pool):
        raise ConfigError(f"{config.name}: key 'budgets': {budget} exceeds the {len(pool)} fine-tuning frames")
    return subset(pool, budget, seed=seed)


def arm_stage(config, folder: Path, arm: str, budget: int, seed: int, data: dict, pretrained: str | None,
              progress: bool = True, settings: ArchitectureRun | None = None) -> dict:
    """One ffpt arm's model: fine-tuned from ``pretrained``, or from scratch when it is ``None``."""
    train_path = write_frames(folder / "train.extxyz", budget_frames(config, data, budget, seed))
    stage = "finetune" if pretrained is not None else "scratch"
    return train_stage(config, folder / "model", str(train_path), data["valid"], stage, seed, init=pretrained,
                       progress=progress, settings=settings)


def reference_stage(config: ExperimentConfig, folder: Path, budget: int, seed: int, data: dict) -> dict:
    """MACE trained by ``mace_run_train`` (``mace_reference``) on the frames every arm gets at ``budget``
    and arm seed ``seed``, validated on the experiment's validation frames (both written here)."""
    from ffpt.training.mace_cli import LOG_FILE, train_with_mace_cli

    train_path = write_frames(folder / "train.extxyz", budget_frames(config, data, budget, seed))
    valid_path = write_frames(folder / "valid.extxyz", read_frames(data["valid"]))
    model = train_with_mace_cli(train_path, valid_path, folder / "mace", config.mace_reference, seed, threads=1)
    log = (model.parent / LOG_FILE).read_text(errors="replace") if (model.parent / LOG_FILE).exists() else ""
    # mace_run_train's patience either starts stage two early or, in stage two, ends the run
    stopped = "early_stopping" if re.search(r"epochs without improvement\s*$", log, re.MULTILINE) else "max_epochs"
    atomic_write_json(model.parent / "metrics.json", {"stopped_by": stopped})
    return {"model": str(model)}


def model_predictions(path: str, frames: list) -> tuple:
    """Energies (eV) and forces (eV/A) of the model file ``path`` (ffpt's, or a mace_run_train ``.model``
    through MACE's calculator) on ``frames``."""
    from ffpt.models.inference import calculator_predictions, predict_frames
    from ffpt.models.loading import load_calculator
    from ffpt.models.mace_cli_model import is_mace_cli_model
    from ffpt.models.model_file import load_model

    if is_mace_cli_model(path):
        return calculator_predictions(load_calculator(path), frames, [f"test frame {k}" for k in range(len(frames))])
    return predict_frames(load_model(path), frames)


def evaluate_stage(config, folder: Path, data: dict, models: dict) -> dict:
    """Test errors of every model (and each test frame's, for paired comparisons between arms); parity
    plots of every arm (seed 0) at the smallest and largest budget."""
    from ffpt.analysis.errors import parity_plot_arms
    from ffpt.observables.errors import error_table, frame_errors

    test = read_frames(data["test"])
    rows, shown = [], {}
    for (arm, budget, seed), path in models.items():
        energies, forces = model_predictions(path, test)
        rows.append({"arm": arm, "budget": budget, "seed": seed, **error_table(test, energies, forces).as_dict(),
                     "per_frame": frame_errors(test, energies, forces)})
        if budget in (min(config.budgets), max(config.budgets)) and seed == 0:
            shown.setdefault(budget, {})[arm] = (energies, forces)
    for budget, arms in shown.items():
        parity_plot_arms(test, arms, folder / f"parity_n{budget}.png",
                         f"{config.name}: test set, {budget} fine-tuning labels")
    return {"rows": rows}


def export_stage(folder: Path, model_path: str, dtype: str | None = None) -> dict:
    """The model's AOTInductor package (checked against the model file) for fast MD, in ``dtype``
    ("float32"/"float64"; default the model's)."""
    from ffpt.models.export import export_file

    return {"package": export_file(model_path, folder / "model.pt2", dtype)["package"]}


def exported_stage_names(config: ExperimentConfig, arm: str, budget: int, seed: int,
                         temperature_K: float | None = None) -> tuple[str, str]:
    """The export and stability stage names of one model; a package float type other than the model's
    (``stability.export_dtype``) gets folders of its own, so the model's own runs stay cached beside;
    one of ``stability.extra_temperatures`` (``temperature_K``, K) too: its stability stage only."""
    dtype = config.stability.export_dtype  # only with exported (StabilityConfig)
    suffix = f"_{dtype}" if dtype else ""
    return (f"export_{arm}_n{budget}_s{seed}{suffix}",
            f"stability_{arm}_n{budget}_s{seed}{suffix}{temperature_suffix(temperature_K)}")


def temperature_suffix(temperature_K: float | None) -> str:
    """The name suffix of an extra stability temperature (``_1000K``); none for the main one (``None``)."""
    return "" if temperature_K is None else f"_{temperature_name(temperature_K)}"


def stability_starts(config: ExperimentConfig) -> dict:
    """The starts of ``stability.h2combustion``: start name (e.g. ``TS_09``) -> structure with its
    channel's spin and id in ``info``; empty for a single-structure stability section."""
    starts = config.stability.h2combustion if config.stability is not None else None
    if starts is None:
        return {}
    return combustion_starts(starts, config.stability.md.monitors.min_distance, "stability.h2combustion",
                             "stability.md.monitors.min_distance")


def start_groups(config: ExperimentConfig, names: list[str]) -> dict[str, list[str]]:
    """``stability.h2combustion.groups`` as start names (``TS_12a`` belongs to a group listing ``12``)."""
    starts = config.stability.h2combustion if config.stability is not None else None
    return groups_of(starts, names) if starts is not None else {}


def merge_start_batches(batches: dict[str, dict]) -> dict:
    """One model's batches from several starts as one batch output: every run tagged with its start."""
    runs = [{**run, "start": name} for name, batch in batches.items() for run in batch["runs"]]
    return {"runs": runs, "starts": {name: {k: batch[k] for k in ("seeds", "time_to_failure_fs",
                                                                  "fraction_stable_at_end")}
                                     for name, batch in batches.items()}}


def stability_stage(config, folder: Path, arm: str, model_path: str, data: dict, progress: bool,
                    executor: cf.Executor | None = None, md_seeds: list[int] | None = None,
                    structure=None) -> dict:
    """MD batch of one model from ``structure`` (default: ``stability.structure`` or the first seed)
    with MD seeds ``md_seeds`` (default ``range(n_runs)``), its seeds as tasks of ``executor`` (in
    process when ``None``); ``monitors.reference_rdf: abinitio`` means the RDF of the ab initio
    configurations (e.g. GFN2-xTB MD of the box)."""
    from ase.io import read

    from ffpt.jobs.md import CalculatorSpec, run_batch
    from ffpt.sampling.run import load_seeds

    s = config.stability
    if structure is None and s.structure is not None:
        if not Path(s.structure).is_file():
            raise DataError(f"{s.structure}: no such structure file (key 'stability.structure')")
        structure = read(s.structure)
    elif structure is None:
        structure = load_seeds(config.seeds[:1])[0].atoms
    md = s.md
    if md.monitors.reference_rdf is not None and str(md.monitors.reference_rdf) == "abinitio":
        if "configs" not in data:
            raise ConfigError(f"{config.name}: key 'stability.md.monitors.reference_rdf': 'abinitio' needs "
                              "ab initio configurations from a teacher (abinitio.teacher)")
        monitors = md.monitors.model_copy(update={"reference_rdf": Path(data["configs"])})
        md = md.model_copy(update={"monitors": monitors})
    if s.batch is not None:
        md = md.model_copy(update={"batch": s.batch})
    md_seeds = list(range(s.n_runs)) if md_seeds is None else md_seeds
    batch = run_batch(structure, CalculatorSpec(str(model_path)), md_seeds, md, folder,
                      progress=progress, label=arm, executor=executor)
    result = batch.as_dict()
    if structure.pbc.all():
        result["rdf"] = str(trajectories_rdf(folder, md))
    if md.ensemble == "npt":
        result["density"] = str(trajectories_density(folder, md))
    return result


def trajectories_rdf(folder: Path, md) -> Path:
    """RDF of every saved frame of a batch's trajectories (the liquid each arm's model makes) -> rdf.json."""
    from ase.io import iread

    from ffpt.observables.rdf import RDFAccumulator
    from ffpt.dynamics.trajectory import TRAJECTORY_FILES

    m = md.monitors
    acc = RDFAccumulator(m.rdf_rmax, m.rdf_bins, m.rdf_pairs)
    for path in sorted(folder.glob(f"seed_*/{TRAJECTORY_FILES[md.trajectory_format]}")):
        for k, atoms in enumerate(iread(path)):
            acc.add(atoms, where=f"{path} frame {k}")
    return acc.result().save(folder / "rdf.json")


def trajectories_density(folder: Path, md) -> Path:
    """Mass density (g/cm^3) against time of each run of an NPT batch -> density.json."""
    from ase.io import read

    from ffpt.dynamics.trajectory import TRAJECTORY_FILES
    from ffpt.observables.density import RunDensity

    runs = [asdict(RunDensity.of(read(path, ":")))
            for path in sorted(folder.glob(f"seed_*/{TRAJECTORY_FILES[md.trajectory_format]}"))]
    path = folder / "density.json"
    atomic_write_json(path, {"runs": runs})
    return path


def run_experiment(config: ExperimentConfig, out: str | Path, progress: bool = True, *, workers: int | None = None,
                   scheduler: str | None = None, executor: cf.Executor | None = None) -> dict:
    """Run (or resume, skipping finished stages) the experiment into ``out``; returns results.

    The seeds of the stability batches run as parallel tasks: on ``executor`` if given, else on
    :func:`ffpt.execution.executor` ``(workers, scheduler)``, started only when a stage needs it.
    Given any of the three, FF sampling and labelling run there too, and on a parallel executor every
    model's chain of stages (pre-training, training at each budget, export, MD stability:
    :func:`model_chains`) runs as one task, chains side by side, before the stages that need all the
    models (evaluation, active learning, metadynamics, the report); else labelling uses
    ``abinitio.workers`` of the config. One run at a time per folder: a second is refused
    (:func:`ffpt.fileio.output_lock` on ``<out>.lock``).
    """
    shared = executor is not None or workers is not None or scheduler is not None
    with ExitStack() as stack:
        stack.enter_context(output_lock(out, "experiment"))  # two runs in one folder would undo each other's stages

        def pool() -> cf.Executor:
            nonlocal executor
            if executor is None:
                from ffpt.execution import executor as open_executor

                executor = stack.enter_context(open_executor(workers, scheduler))
            return executor

        return _run_stages(config, Path(out), progress, pool, shared)


def _run_stages(config: ExperimentConfig, out: Path, progress: bool, pool: Callable[[], cf.Executor],
                shared: bool = False) -> dict:
    """The stages of :func:`run_experiment`; ``pool()`` gives the executor of parallel tasks (also of
    sampling and labelling when ``shared``)."""
    from ffpt.workflows.report import write_report

    starts = stability_starts(config)  # a bad start is an input error before hours of training, not after
    if config.metad is not None:
        from ffpt.workflows.reactive import check_metad

        check_metad(config.metad)
    run = RunDirectory(out)
    ff = run.stage("ff_sampling", ff_sampling_inputs(config),
                   lambda d: ff_sampling(config, d, progress, pool() if shared else None))
    data = run.stage("abinitio", abinitio_inputs(config),
                     lambda d: abinitio_data(config, d, progress, pool() if shared else None))
    runs = config.architecture_runs
    if shared and len(model_chains(config)) > 1 and not isinstance(pool(), InlineExecutor):
        run_chains(config, out, ff, data, pool())  # every model's training, export and MD; cached below
    pretrained = {(arch.architecture, seed): pretrained_model(config, run, arch, seed, ff, progress)
                  for arch in runs for seed in range(config.arm_seeds)}
    models = {}
    for budget in sorted(config.budgets):
        for seed in range(config.arm_seeds):
            for arch in runs:
                for kind in ARM_KINDS:
                    init = pretrained[(arch.architecture, seed)] if kind == "ffpt-ft" else None
                    models[(arch.arm(kind), budget, seed)] = arm_model(config, run, arch, kind, budget, seed, data,
                                                                       init, progress)
            if config.mace_reference is not None:
                models[(REFERENCE_ARM, budget, seed)] = reference_model(config, run, budget, seed, data)
    model_list = [[arm, budget, seed, path] for (arm, budget, seed), path in models.items()]
    errors = run.stage("evaluate", {"models": model_list, "data": data, "per_frame": True},
                       lambda d: evaluate_stage(config, d, data, models))
    active = active_learning_stages(config, run, data, {seed: pretrained[(runs[0].architecture, seed)]
                                                        for seed in range(config.arm_seeds)}, progress, pool)
    arms = [arm.name for arm in config.arms]
    stability, extra = {}, {}  # extra: each of stability.extra_temperatures -> (arm, budget, seed) -> batch
    if config.stability is not None:
        for budget in config.stability_budgets:
            for seed in range(config.arm_seeds):
                for arm in arms:
                    batches = model_stability(config, run, arm, budget, seed, models[(arm, budget, seed)], data,
                                              starts, progress, pool)
                    stability[(arm, budget, seed)] = batches.pop(None)
                    for temperature, batch in batches.items():
                        extra.setdefault(temperature, {})[(arm, budget, seed)] = batch
    metad = {}  # (arm, channel, run) -> run summary
    if config.metad is not None:
        from ffpt.workflows.reactive import metad_inputs, metad_runs, metad_stage

        budget = config.metad.budget or max(config.budgets)  # arm seed 0's model at this budget
        for arm in arms:
            path = models[(arm, budget, 0)]
            for m in metad_runs(config.metad, arm):
                metad[(arm, m.channel, m.run)] = run.stage(
                    m.stage, metad_inputs(config.metad, path, m),
                    lambda d, p=path, m=m: metad_stage(config.metad, d, p, progress, m,
                                                       f"model at {budget} labels (arm seed 0)"))
    after = after_al_stability(config, run, active, starts, data, progress, pool)
    groups = start_groups(config, list(starts))
    results = write_report(config, Path(out), ff, data, errors["rows"], stability, metad, groups=groups,
                           models=models, extra_stability=extra)
    if active:
        from ffpt.workflows.al_report import add_active_learning

        a = config.active_learning
        first = a.budget or min(config.budgets)
        results = add_active_learning(results, active, Path(out), a.stop.stable_fraction, a.stop.max_labels,
                                      before={k: v for k, v in stability.items() if k[1] == first}, after=after,
                                      rows=[r for r in errors["rows"] if r["budget"] == first],
                                      groups=groups)
    return results


def pretrained_model(config: ExperimentConfig, run: RunDirectory, arch: ArchitectureRun, seed: int, ff: dict,
                     progress: bool) -> str:
    """The stage of ``arch``'s model pre-trained on the force-field frames ``ff`` (arm seed ``seed``) -> model file."""
    return run.stage(arch.pretrain_stage(seed), pretrain_inputs(arch, ff),
                     lambda d: train_stage(config, d, ff["frames"], None, "pretrain", seed, progress=progress,
                                           settings=arch))["model"]


def arm_model(config: ExperimentConfig, run: RunDirectory, arch: ArchitectureRun, kind: str, budget: int, seed: int,
              data: dict, init: str | None, progress: bool) -> str:
    """The stage of one ffpt arm's model (``kind`` ffpt-ft from ``init``, or scratch) -> model file."""
    arm = arch.arm(kind)
    return run.stage(f"{arm}_n{budget}_s{seed}", arm_inputs(arch, kind, budget, seed, data, init),
                     lambda d: arm_stage(config, d, arm, budget, seed, data, init, progress, settings=arch))["model"]


def reference_model(config: ExperimentConfig, run: RunDirectory, budget: int, seed: int, data: dict) -> str:
    """The stage of ``mace_run_train``'s model at ``budget`` and arm seed ``seed`` -> model file."""
    return run.stage(f"{REFERENCE_ARM}_n{budget}_s{seed}", reference_inputs(config, budget, seed, data),
                     lambda d: reference_stage(config, d, budget, seed, data))["model"]


@dataclass(frozen=True)
class MDModel:
    """The model a stability stage runs. ``key`` keys its stages: the model file, or for an exported
    model the model file and the package's float type, so that its MD stays cached when the package is
    made again (compiled bytes may differ) or is not there at all (carried run folders). ``path()`` is
    the file MD loads (the package is made on first use). ``package``: the path an earlier ffpt keyed an
    exported model's stages by (the package's bytes), so stages recorded that way stay up to date."""

    key: object
    path: Callable[[], str]
    package: str | None = None

    def inputs(self, **rest) -> dict:
        """A stability stage's inputs: this model and ``rest``."""
        return {"model": self.key, **rest}

    def earlier(self, **rest) -> Callable[[], dict] | None:
        """The inputs an earlier ffpt keyed the same stage by, if they differ."""
        return None if self.package is None else (lambda: {"model": self.package, **rest})


def md_model(config: ExperimentConfig, run: RunDirectory, arm: str, budget: int, seed: int, path: str) -> MDModel:
    """The model file ``path`` as stability stages run it: itself, or with ``stability.exported`` its
    AOTInductor package (mace_run_train's model too: converted to ffpt's MACE, then exported)."""
    if not config.stability.exported:
        return MDModel(path, lambda: path)
    export_name, _ = exported_stage_names(config, arm, budget, seed)
    dtype = config.stability.export_dtype
    export_inputs = {"model": path} | ({"dtype": dtype} if dtype else {})
    return MDModel({"exported": export_inputs},
                   lambda: run.stage(export_name, export_inputs, lambda d: export_stage(d, path, dtype))["package"],
                   str(run.root / export_name / "model.pt2"))


def model_stability(config: ExperimentConfig, run: RunDirectory, arm: str, budget: int, seed: int, path: str,
                    data: dict, starts: dict, progress: bool, pool: Callable[[], cf.Executor]) -> dict:
    """The MD stability stages of one model file ``path`` (run as its export with ``stability.exported``,
    made only when a stage runs), one for every temperature: at ``stability.md.temperature_K`` (key
    ``None``), then at each of ``stability.extra_temperatures`` (key: the temperature, K) in stages of
    their own -> batches."""
    model = md_model(config, run, arm, budget, seed, path)
    return {t: temperature_stability(config, run, arm, budget, seed, model, data, starts, progress, pool, t)
            for t in [None, *config.stability.extra_temperatures]}


def temperature_stability(config: ExperimentConfig, run: RunDirectory, arm: str, budget: int, seed: int,
                          model: MDModel, data: dict, starts: dict, progress: bool,
                          pool: Callable[[], cf.Executor], temperature_K: float | None) -> dict:
    """The MD stability stages of one model at ``temperature_K`` (K; ``None``: ``stability.md.temperature_K``):
    from the stability structure, or one stage per combustion start merged into one batch."""
    if temperature_K is not None:
        config = config.at_temperature(temperature_K)  # keyed and run at it
    settings, n = stability_settings(config), config.stability.n_runs
    md_seeds = list(range(seed * n, (seed + 1) * n))  # each model of an arm its own MD seeds
    _, stability_name = exported_stage_names(config, arm, budget, seed, temperature_K)
    if not starts:
        rest = {"stability": settings, "md_seeds": md_seeds}
        return run.stage(stability_name, model.inputs(**rest),
                         lambda d: stability_stage(config, d, arm, model.path(), data, progress, pool(), md_seeds),
                         model.earlier(**rest))
    batches = {}  # one stage per start (its folder named as the model's stage): adding a channel reruns nothing else
    for name, atoms in starts.items():
        rest = {"md": settings["md"], "n_runs": n, "md_seeds": md_seeds, "start": start_key(name, atoms)}
        batches[name] = run.stage(
            f"stability/{stability_name.removeprefix('stability_')}/{name}", model.inputs(**rest),
            lambda d, s=atoms: stability_stage(config, d, arm, model.path(), data, progress, pool(), md_seeds,
                                               structure=s),
            model.earlier(**rest))
    return merge_start_batches(batches)


def model_chains(config: ExperimentConfig) -> list[tuple[int | None, str, int]]:
    """The independent chains of an experiment's stages, (architecture index or ``None`` for the
    ``mace_run_train`` arm, kind, arm seed): each pre-trains (FFPT-FT), trains its arm at every budget,
    exports and runs its MD stability; the slowest kinds first (later architectures, FFPT-FT)."""
    chains = [(k, kind, seed) for k in range(len(config.architecture_runs)) for kind in ARM_KINDS
              for seed in range(config.arm_seeds)]
    if config.mace_reference is not None:
        chains += [(None, "scratch", seed) for seed in range(config.arm_seeds)]
    return sorted(chains, key=lambda c: (c[0] == 0, c[1] != "ffpt-ft"))


def run_chain(config: ExperimentConfig, out: Path, chain: tuple[int | None, str, int], ff: dict, data: dict) -> str:
    """One chain of :func:`model_chains` in this process (its MD seeds one after another), as cached stages
    of the run folder ``out``, its stage messages prefixed with the chain's name, which it returns."""
    index, kind, seed = chain
    arch = None if index is None else config.architecture_runs[index]
    name = f"{REFERENCE_ARM if arch is None else arch.arm(kind)} s{seed}"
    run = RunDirectory(out, echo=lambda line: print(f"({name}) {line}", flush=True))
    starts = stability_starts(config)
    init = pretrained_model(config, run, arch, seed, ff, False) if kind == "ffpt-ft" else None
    for budget in sorted(config.budgets):
        if arch is None:
            arm, path = REFERENCE_ARM, reference_model(config, run, budget, seed, data)
        else:
            arm, path = arch.arm(kind), arm_model(config, run, arch, kind, budget, seed, data, init, False)
        if config.stability is not None and budget in config.stability_budgets:
            model_stability(config, run, arm, budget, seed, path, data, starts, False, InlineExecutor)
    return name


def run_chains(config: ExperimentConfig, out: Path, ff: dict, data: dict, pool: cf.Executor) -> None:
    """Every chain of :func:`model_chains` as a task of ``pool``; all of them end (finished or failed)
    before the first failure is raised, so every finished stage is cached."""
    futures = [pool.submit(run_chain, config, out, chain, ff, data) for chain in model_chains(config)]
    cf.wait(futures)
    for future in futures:
        future.result()


def start_key(name: str, atoms) -> dict:
    """A start structure as part of a stability stage's key."""
    return {"name": name, "info": atoms.info, "symbols": atoms.get_chemical_symbols(),
            "positions": atoms.positions.round(8).tolist()}


def after_al_stability(config: ExperimentConfig, run: RunDirectory, active: dict, starts: dict, data: dict,
                       progress: bool, pool: Callable[[], cf.Executor]) -> dict:
    """MD from every start of ``stability.h2combustion`` with each arm's final active-learning committee
    (the members' mean; arm seed 0's MD seeds; one cached stage per start) -> (arm, 'after', 0) -> batch."""
    if not active or not starts:
        return {}
    md, n = stability_settings(config)["md"], config.stability.n_runs
    seeds = list(range(n))
    after = {}
    for summary in active.values():
        arm, path = summary["arm"], summary["final_committee"]
        batches = {name: run.stage(f"stability/{arm}_s0/{name}",
                                   {"model": path, "md": md, "n_runs": n, "md_seeds": seeds,
                                    "start": start_key(name, atoms)},
                                   lambda d, a=arm, p=path, s=atoms: stability_stage(
                                       config, d, a, p, data, progress, pool(), seeds, structure=s))
                   for name, atoms in starts.items()}
        after[(arm, "after", 0)] = merge_start_batches(batches)
    return after


def active_learning_stages(config: ExperimentConfig, run: RunDirectory, data: dict, pretrained: dict, progress: bool,
                           pool: Callable[[], cf.Executor]) -> dict:
    """Active learning of each arm from its labels at ``active_learning.budget`` (seed 0) -> summaries."""
    from ffpt.workflows.active_learning import experiment_al_config, run_active_learning

    a = config.active_learning
    if a is None:
        return {}
    budget = a.budget or min(config.budgets)
    summaries = {}
    for arm in a.arms:
        labels = str(run.root / f"{arm}_n{budget}_s0" / "train.extxyz")
        al = experiment_al_config(config, arm, labels, data, pretrained[0] if arm == "ffpt-ft" else None)
        summaries[arm] = run.stage(f"al_{arm}", {"al": al.model_dump(mode="json")},
                                   lambda d, c=al: run_active_learning(c, d, progress, executor=pool()))
    return summaries
