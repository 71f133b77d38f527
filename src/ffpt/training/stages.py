"""One code path for the three training stages: ``scratch``, ``pretrain`` and ``finetune``.

scratch/pretrain build a new network (per-element references by least squares, energy scale from
the force RMS); finetune starts from a model file's weights and can refit references, reset the
output head, freeze parts and use its own learning rate. Runs resume from ``out/checkpoints/last.ckpt``
when it belongs to the same run (:mod:`ffpt.training.run_folder`), and a resumed run repeats the
uninterrupted one: shuffling is a function of (seed, epoch), the global RNG states, the EMA weights and
the learning-rate scheduler travel in the checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ffpt import keys
from ffpt.fileio import atomic_write_json
from ffpt.training.checkpoint_io import AtomicCheckpointIO
from ffpt.data.io import read_frames
from ffpt.data.splits import split, subset
from ffpt.models.model_file import build_model, load_model, save_model
from ffpt.models.potential import InteratomicPotential
from ffpt.models.references import element_counts, fit_references, force_rms, frame_energies
from ffpt.config import ConfigError
from ffpt.training.config import TrainConfig
from ffpt.training.dataset import GraphDataset, ReplayEpoch, ReplayMix, loader, replay_count
from ffpt.training.module import EMAWeights, PlateauStep, PotentialModule, StageTwo
from ffpt.training.run_folder import run_record, start_run

# Fewer frames leave nothing to learn beyond the per-element references fitted to them.
MIN_TRAIN_FRAMES = 2
# how a run stopped, in metrics.json and the model's provenance: stopped_by (max_epochs, early_stopping or
# max_time), epochs (completed), steps (optimizer steps), wall_seconds (training, summed over resumes)
STOP_KEYS = ("stopped_by", "epochs", "steps", "wall_seconds")


@dataclass(frozen=True)
class TrainResult:
    model_path: Path
    metrics: dict  # validation errors of the saved (best, EMA) model and how training stopped (STOP_KEYS)
    is_global_zero: bool = True  # False on the other ranks of a DDP run (which print nothing)


def set_references(model: InteratomicPotential, frames) -> None:
    """Refit per-element references to ``frames`` given the current network (network unchanged)."""
    from ffpt.models.inference import network_energies

    residual = frame_energies(frames) - network_energies(model, frames)
    refs, present = fit_references(element_counts(frames, model.elements), residual)
    new = model.references.detach().clone()
    new[torch.from_numpy(present)] = torch.as_tensor(refs[present], dtype=new.dtype)
    model.references.copy_(new)


def freeze(model: InteratomicPotential, prefixes: list[str]) -> None:
    names = [n for n, _ in model.named_parameters()]
    for prefix in prefixes:
        hits = [n for n in names if n == prefix or n.startswith(prefix + ".")]
        if not hits:
            tops = sorted({n.split(".")[0] for n in names})
            raise ConfigError(f"finetune.freeze: '{prefix}' matches no parameter; top-level parts: {tops}")
        for n, p in model.named_parameters():
            if n in hits:
                p.requires_grad_(False)


def reset_head(model: InteratomicPotential) -> None:
    head = getattr(model, model.head_name)
    for module in head.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()


def load_sets(config: TrainConfig):
    """Training and validation frames; too few for either is a :class:`ConfigError` naming the file."""
    data = config.data
    train = read_frames(data.train, fmt=data)
    n_file = len(train)
    if data.valid is not None:
        valid = read_frames(data.valid, fmt=data)
    else:
        n_valid = max(1, int(round(data.valid_fraction * n_file)))
        if n_file - n_valid < MIN_TRAIN_FRAMES:
            raise ConfigError(
                f"{data.train}: {n_file} frame(s); a validation split of {n_valid} leaves "
                f"{max(n_file - n_valid, 0)} for training, at least {MIN_TRAIN_FRAMES} are needed "
                f"(more frames, or a separate data.valid)"
            )
        valid, train = split(train, [n_valid, n_file - n_valid], seed=data.split_seed)
    if data.max_train_frames is not None:
        train = subset(train, min(data.max_train_frames, len(train)), seed=data.split_seed)
    if len(train) < MIN_TRAIN_FRAMES:
        raise ConfigError(
            f"{data.train}: {len(train)} training frame(s) (of {n_file} in the file); "
            f"at least {MIN_TRAIN_FRAMES} are needed"
        )
    return train, valid


def _initial_model(config: TrainConfig, train, dtype) -> InteratomicPotential:
    stage = config.training.stage
    if stage == "finetune":
        if config.finetune.init is None:
            raise ConfigError("stage 'finetune' needs finetune.init (a pre-trained model file)")
        model = load_model(config.finetune.init).to(dtype)
        missing = sorted({int(z) for a in train for z in a.numbers} - set(model.elements))
        if missing:
            from ase.data import chemical_symbols

            raise ConfigError(
                f"{config.finetune.init}: pre-trained model lacks element(s) "
                f"{[chemical_symbols[z] for z in missing]} present in {config.data.train}"
            )
        if config.finetune.reset_head:
            reset_head(model)
        if config.finetune.refit_references:
            set_references(model, train)
        freeze(model, config.finetune.freeze)
        return model.train()
    elements = sorted({int(z) for a in train for z in a.numbers})
    probe = GraphDataset(train[:500], elements, config.model.cutoff, dtype)
    model = build_model(
        config.model.architecture,
        elements=elements,
        cutoff=config.model.cutoff,
        n_features=config.model.n_features,
        n_layers=config.model.n_layers,
        n_basis=config.model.n_basis,
        avg_num_neighbors=probe.mean_neighbors(),
        **config.model.options,
    ).to(dtype)
    refs, _ = fit_references(element_counts(train, elements), frame_energies(train))
    model.references.copy_(torch.as_tensor(refs, dtype=dtype))
    model.energy_scale.fill_(force_rms(train))
    return model


def _replay_mix(config: TrainConfig, model: InteratomicPotential, train_set: GraphDataset, train_frames) -> ReplayMix:
    """The fine-tuning graphs plus the per-epoch draw of force-field replay frames
    (:class:`ffpt.training.config.ReplayConfig`), weighted as configured."""
    replay = config.finetune.replay
    frames = read_frames(replay.frames, fmt=replay)
    missing = sorted({int(z) for a in frames for z in a.numbers} - set(model.elements))
    if missing:
        from ase.data import chemical_symbols

        raise ConfigError(f"{replay.frames}: replay frames hold element(s) {[chemical_symbols[z] for z in missing]} "
                          f"the model lacks")
    if replay.energy_weight > 0:
        _shift_energies(frames, train_frames, model.elements, replay.frames)
    pool = GraphDataset(frames, model.elements, model.cutoff, train_set.graphs[0].positions.dtype)
    for graph in pool.graphs:
        graph.energy_weight = torch.full_like(graph.energy_weight, replay.energy_weight)
        graph.forces_weight = torch.full_like(graph.forces_weight, replay.forces_weight)
    return ReplayMix(train_set, pool, replay_count(len(train_set), replay.fraction), seed=config.training.seed)


def _shift_energies(frames, reference_frames, elements, path) -> None:
    """Move ``frames``' energies onto the zero of ``reference_frames`` (in place): per-element offsets
    fitted by least squares to each set, their difference added to every frame."""
    own, own_present = fit_references(element_counts(frames, elements), frame_energies(frames))
    ref, ref_present = fit_references(element_counts(reference_frames, elements), frame_energies(reference_frames))
    lacking = own_present & ~ref_present
    if lacking.any():
        from ase.data import chemical_symbols

        names = [chemical_symbols[z] for z, out in zip(elements, lacking) if out]
        raise ConfigError(f"{path}: replay energies need the fine-tuning frames to hold element(s) {names} "
                          f"(or finetune.replay.energy_weight=0)")
    shift = element_counts(frames, elements) @ np.where(own_present, ref - own, 0.0)
    for atoms, delta in zip(frames, shift):
        atoms.info[keys.ENERGY] = float(atoms.info[keys.ENERGY]) + float(delta)


def _stopping(trainer, module: PotentialModule) -> dict:
    """How the fit ended (:data:`STOP_KEYS`): early stopping, the wall-time guard, or the epoch budget."""
    from lightning.pytorch.callbacks import EarlyStopping, Timer

    early = any(isinstance(c, EarlyStopping) and c.stopped_epoch > 0 for c in trainer.callbacks)
    timed_out = any(isinstance(c, Timer) and c.time_remaining("train") is not None and c.time_remaining("train") <= 0
                    for c in trainer.callbacks)
    if early:
        stopped_by = "early_stopping"
    elif timed_out and trainer.current_epoch < trainer.max_epochs:
        stopped_by = "max_time"
    else:
        stopped_by = "max_epochs"
    return {"stopped_by": stopped_by, "epochs": int(trainer.current_epoch), "steps": int(trainer.global_step),
            "wall_seconds": round(module.wall_seconds(), 3)}


def _provenance(config: TrainConfig, train, metrics: dict, record: dict) -> dict:
    teachers = sorted({str(a.info.get("teacher")) for a in train if "teacher" in a.info})
    parent = None
    if config.training.stage == "finetune":
        from ffpt.models.model_file import read_model_file

        parent = {"path": str(config.finetune.init), "provenance": read_model_file(config.finetune.init)["provenance"]}
    return {
        "stage": config.training.stage,
        "train_data": str(config.data.train),
        "train_data_sha256": record["sha256"]["data.train"],
        "n_train_frames": len(train),
        "teachers": teachers,
        "parent": parent,
        "config": config.model_dump(mode="json"),
        "valid_metrics": metrics,
    }


def train(config: TrainConfig) -> TrainResult:
    """Train one stage; returns the saved model file (best validation loss, EMA weights)."""
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    _quiet_lightning()
    out = Path(config.out)
    t = config.training
    train_frames, valid_frames = load_sets(config)
    record = run_record(config)
    ckpt_dir = out.resolve() / "checkpoints"  # Lightning keeps its best-checkpoint record only for the same dirpath
    callbacks = _callbacks(t, ckpt_dir)
    best = next(c for c in callbacks if isinstance(c, ModelCheckpoint))
    trainer = L.Trainer(
        max_epochs=t.max_epochs,
        max_time={"minutes": t.max_time_minutes} if t.max_time_minutes else None,
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy=_strategy(t.strategy),
        precision="64-true" if config.model.dtype == "float64" else "32-true",
        gradient_clip_val=t.grad_clip,
        callbacks=callbacks,
        logger=CSVLogger(out, name="logs"),  # a resumed run logs to the next version
        inference_mode=False,
        enable_progress_bar=t.progress_bar,
        enable_model_summary=False,
        log_every_n_steps=1,
        num_sanity_val_steps=0,
        plugins=[AtomicCheckpointIO()],  # checkpoints written in their own folder (ffpt.fileio)
    )
    # refuses a folder of another run; under DDP only global rank zero writes files (the trainer knows
    # its rank from the launcher's environment before fit), here and below
    if t.stage != "finetune" and config.finetune.replay is not None:
        raise ConfigError(f"finetune.replay applies to stage 'finetune' only, not '{t.stage}'")
    resume = start_run(config, record, write=trainer.is_global_zero)
    L.seed_everything(t.seed, workers=True, verbose=False)
    dtype = getattr(torch, config.model.dtype)
    model = _initial_model(config, train_frames, dtype)
    train_set = GraphDataset(train_frames, model.elements, model.cutoff, dtype)
    if t.stage == "finetune" and config.finetune.replay is not None:
        train_set = _replay_mix(config, model, train_set, train_frames)
        trainer.callbacks.append(ReplayEpoch(train_set))
    valid_set = GraphDataset(valid_frames, model.elements, model.cutoff, dtype)
    lr = config.finetune.lr if (t.stage == "finetune" and config.finetune.lr) else t.lr
    module = PotentialModule(
        model, lr=lr, weight_decay=t.weight_decay, energy_weight=t.energy_weight,
        forces_weight=t.forces_weight, lr_factor=t.lr_factor, lr_patience=t.lr_patience,
        huber_delta=t.huber_delta, stress_weight=t.stress_weight, fit_prior=t.fit_prior, run_record=record,
        optimizer=t.optimizer, amsgrad=t.amsgrad, weight_decay_groups=t.weight_decay_groups,
    )
    # Under DDP Lightning swaps the shuffle for a DistributedSampler seeded with t.seed (seed_everything
    # exports it) and set to each epoch: each rank draws its shard of a permutation of (seed, epoch).
    distributed = torch.distributed.is_available()
    own_group = distributed and not torch.distributed.is_initialized()  # else the caller's, left open
    trainer.fit(
        module,
        loader(train_set, t.batch_size, shuffle=True, seed=t.seed),
        loader(valid_set, t.batch_size, shuffle=False),
        ckpt_path=resume,
    )
    model_path = out / "model.pt"
    metrics = None
    if trainer.is_global_zero:
        stopping = _stopping(trainer, module)
        metrics = _save_best(config, module, best.best_model_path or ckpt_dir / "last.ckpt", train_frames,
                             valid_frames, record, stopping)
    # every rank returns the same metrics, once the model file is written
    metrics = trainer.strategy.broadcast(metrics)
    if own_group and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()  # the one fit opened; its threads would abort the exit
    return TrainResult(model_path=model_path, metrics=metrics, is_global_zero=trainer.is_global_zero)


def _save_best(config: TrainConfig, module: PotentialModule, best_path, train_frames, valid_frames,
               record: dict, stopping: dict) -> dict:
    """Write ``out/model.pt`` (the best checkpoint's EMA weights) and ``out/metrics.json``; returns the
    model's validation errors with ``stopping`` (how the fit ended, :data:`STOP_KEYS`)."""
    from ffpt.observables.errors import error_table
    from ffpt.models.inference import predict_frames

    if Path(best_path).exists():
        state = torch.load(best_path, map_location="cpu", weights_only=False)["state_dict"]
        module.load_state_dict(state)
    model = module.model.cpu().eval()
    if config.training.stage == "finetune" and config.finetune.refit_references:
        # the network moved during fine-tuning: refit the offsets once more (closed form, training labels)
        set_references(model, train_frames)
    # errors of what the loss fitted: the network alone when the prior was left out of it
    energies, forces = predict_frames(model, valid_frames, prior=config.training.fit_prior)
    metrics = {**error_table(valid_frames, energies, forces).as_dict(), **stopping}
    out = Path(config.out)
    save_model(model, out / "model.pt", provenance=_provenance(config, train_frames, metrics, record))
    atomic_write_json(out / "metrics.json", metrics)
    return metrics


def _callbacks(t, ckpt_dir: Path) -> list:
    """The Lightning callbacks of a run: MACE's stage two (``swa_start``), plateau LR steps, best/last
    checkpoints, early stopping, EMA."""
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

    # (no version counter: after stage two restarts the selection, its first best overwrites best.ckpt)
    best = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor="val_loss", save_top_k=1,
                           enable_version_counter=False)
    # every epoch (Lightning's save_last writes last.ckpt only in epochs that improve val_loss); after
    # `best`, so that last.ckpt records the best checkpoint of its epoch
    last = ModelCheckpoint(dirpath=ckpt_dir, filename="last", save_top_k=1, enable_version_counter=False)
    callbacks = [PlateauStep(t.swa_start), best, last,
                 EarlyStopping(monitor="val_loss", patience=t.early_stopping_patience)]
    if t.swa_start is not None:
        callbacks.insert(0, StageTwo(t.swa_start, t.swa_lr, t.swa_energy_weight, t.swa_forces_weight))
    if t.ema_decay > 0:
        callbacks.append(EMAWeights(t.ema_decay, warmup=t.ema_warmup))
    return callbacks


def _strategy(name: str) -> str:
    """Lightning's strategy for ``training.strategy``: a plain DDP launcher (ddp, ddp_fork, ddp_notebook)
    becomes its ``_find_unused_parameters_true`` variant, since some networks hold
    parameters the loss does not reach (NewtonNet's last vector gate) and DDP stops at them otherwise.
    Name the ``_false`` variant to skip that search."""
    from lightning.pytorch.strategies import StrategyRegistry

    searching = f"{name}_find_unused_parameters_true"
    return searching if searching in StrategyRegistry else name


def _quiet_lightning() -> None:
    """Keep Lightning's start-up chatter (accelerator tips, tree-spec deprecations) out of the output."""
    import logging
    import warnings

    for name in ("lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*exists and is not empty.*")  # expected when resuming
    warnings.filterwarnings("ignore", message=".*Grad strides do not match bucket view strides.*")  # DDP, harmless
