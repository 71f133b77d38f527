"""The Lightning module: energy + force loss, metrics in meV/atom and meV/A; and what a checkpoint
needs beyond Lightning's own state for a resumed run to repeat the uninterrupted one."""

from __future__ import annotations

import random
import time

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, WeightAveraging

from ffpt.config import ConfigError
from ffpt.models.graph import AtomicGraph
from ffpt.models.potential import InteratomicPotential


def loss_terms(
    model: InteratomicPotential, batch: AtomicGraph, training: bool, huber_delta: float | None = None,
    stress: bool = False, prior: bool = True,
) -> dict[str, torch.Tensor]:
    """Loss terms (mean squared errors) and absolute errors of energy per atom (eV) and force components
    (eV/A); with ``stress`` also of stress components (eV/A^3).

    Each frame's terms are scaled by the batch's per-graph weights (``energy_weight``, ``forces_weight``,
    ``stress_weight``) and averaged over the frames (atoms) whose weight is not zero: a frame without
    a stress label, or a replayed force-field frame whose energy is left out, adds nothing to that
    term. With ``huber_delta`` the energy and force terms are Huber losses instead (quadratic below
    ``huber_delta``, linear above, in eV/atom and eV/A), which keeps a few frames with huge forces from
    dominating; the stress term stays a squared error. ``prior=False``: the model's prediction without
    its repulsion prior is compared with the labels, which is the whole model against labels plus the
    prior.
    """
    pred = model(batch, forces=True, stress=stress, training=training, prior=prior)
    n = batch.n_atoms.to(pred.energy.dtype)
    de = (pred.energy - batch.energy) / n
    df = pred.forces - batch.forces
    ones = torch.ones_like(de)
    w_e = ones if batch.energy_weight is None else batch.energy_weight
    w_f = (ones if batch.forces_weight is None else batch.forces_weight)[batch.batch].unsqueeze(-1)

    def penalty(x: torch.Tensor) -> torch.Tensor:
        if huber_delta is None:
            return x**2
        # scaled by 2 so that it equals the squared error below delta
        return 2 * torch.nn.functional.huber_loss(x, torch.zeros_like(x), delta=huber_delta, reduction="none")

    def weighted_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        counted = (weights > 0).expand_as(values).sum().clamp_min(1)
        return (weights * values).sum() / counted

    used_e = (w_e > 0).to(de.dtype)
    terms = {
        "energy_loss": weighted_mean(penalty(de), w_e),
        "forces_loss": weighted_mean(penalty(df), w_f),
        "energy_mae": weighted_mean(de.abs(), used_e),
        "forces_mae": df.abs().mean(),
    }
    if stress:
        w_s = batch.stress_weight.view(-1, 1, 1)
        ds = pred.stress - batch.stress
        terms["stress_loss"] = weighted_mean(ds**2, w_s)
        terms["stress_mae"] = weighted_mean(ds.abs(), (w_s > 0).to(ds.dtype))
    return terms


class PotentialModule(L.LightningModule):
    """Trains an :class:`InteratomicPotential` with loss = w_E MSE(E/N) + w_F MSE(F) (or Huber)
    + w_S MSE(stress) (only when ``stress_weight`` > 0; the strain gradient comes from the same backward
    pass as the forces, so it costs no extra derivative).
    ``fit_prior=False``: the loss sees the model without its repulsion prior, so the network alone
    fits the labels (and never learns to cancel the prior where the labels' wall is softer)."""

    def __init__(
        self,
        model: InteratomicPotential,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        energy_weight: float = 1.0,
        forces_weight: float = 10.0,
        lr_factor: float = 0.5,
        lr_patience: int = 10,
        huber_delta: float | None = None,
        stress_weight: float = 0.0,
        fit_prior: bool = True,
        run_record: dict | None = None,
        optimizer: str = "adamw",
        amsgrad: bool = False,
        weight_decay_groups: str = "all",
    ):
        super().__init__()
        self.run_record = run_record  # resolved config and data hashes, stored in every checkpoint
        self.model = model
        self.lr, self.weight_decay = lr, weight_decay
        self.energy_weight, self.forces_weight = energy_weight, forces_weight
        self.lr_factor, self.lr_patience = lr_factor, lr_patience
        self.huber_delta = huber_delta
        self.stress_weight = stress_weight
        self.fit_prior = fit_prior
        self.optimizer_name, self.amsgrad, self.weight_decay_groups = optimizer, amsgrad, weight_decay_groups
        self.max_non_finite = 20  # consecutive non-finite training batches before giving up
        self.non_finite_in_a_row = 0
        self.wall_seconds_before = 0.0  # of the earlier sessions of a resumed run (from its checkpoint)
        self.fit_started = time.perf_counter()

    def _step(self, batch: AtomicGraph, stage: str) -> torch.Tensor | None:
        with torch.enable_grad():
            terms = loss_terms(self.model, batch, training=stage == "train", huber_delta=self.huber_delta,
                               stress=self.stress_weight > 0, prior=self.fit_prior)
        loss = self.energy_weight * terms["energy_loss"] + self.forces_weight * terms["forces_loss"]
        if "stress_loss" in terms:
            loss = loss + self.stress_weight * terms["stress_loss"]
        if stage == "train" and not self._all_finite(loss):
            return self._skip_non_finite(loss)
        if stage == "train":
            self.non_finite_in_a_row = 0
        # sync_dist: under DDP the epoch values are means over all ranks' shards, so that every rank
        # steps the plateau scheduler, stops early and picks the best checkpoint on the same numbers
        log = dict(batch_size=batch.n_graphs, on_epoch=True, on_step=False, sync_dist=True)
        self.log(f"{stage}_loss", loss, prog_bar=stage == "val", **log)
        self.log(f"{stage}_energy_mae_mev_per_atom", 1e3 * terms["energy_mae"], **log)
        self.log(f"{stage}_forces_mae_mev_per_a", 1e3 * terms["forces_mae"], prog_bar=stage == "val", **log)
        if "stress_mae" in terms:
            self.log(f"{stage}_stress_mae_mev_per_a3", 1e3 * terms["stress_mae"], **log)
        return loss

    def _all_finite(self, loss: torch.Tensor) -> bool:
        """Whether the loss is finite on every rank: under DDP all ranks skip a batch together, since
        one rank skipping its backward would leave the others waiting for its gradients."""
        finite = bool(torch.isfinite(loss))
        if self._trainer is not None and self.trainer.world_size > 1:  # (no trainer: a direct call)
            finite = self.trainer.strategy.reduce_boolean_decision(finite, all=True)
        return finite

    def _skip_non_finite(self, loss: torch.Tensor) -> None:
        """Skip the optimiser step of a batch whose loss is inf/NaN; stop if it keeps happening."""
        self.non_finite_in_a_row += 1
        if self.non_finite_in_a_row >= self.max_non_finite:
            raise FloatingPointError(
                f"training diverged: loss {loss.item()} in {self.non_finite_in_a_row} batches in a row "
                f"(epoch {self.current_epoch}); lower training.lr or training.grad_clip"
            )
        return None  # Lightning skips backward and the optimiser step

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def transfer_batch_to_device(self, batch: AtomicGraph, device, dataloader_idx):
        return batch.to(device)

    def on_fit_start(self) -> None:
        self.fit_started = time.perf_counter()

    def wall_seconds(self) -> float:
        """Training wall time of the run so far, s, summed over the sessions of a resumed run."""
        return self.wall_seconds_before + time.perf_counter() - self.fit_started

    def parameter_groups(self) -> list[dict]:
        """The trainable parameters, with ``weight_decay`` on all of them or, for ``weight_decay_groups``
        'mace', only on MACE's (interaction linears ``interactions.*.linear.weight`` and
        ``*.skip_tp_full.weight``, and the products), as mace_run_train does."""
        named = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        if self.weight_decay_groups == "all":
            return [{"params": [p for _, p in named], "weight_decay": self.weight_decay}]
        decays = [(n.startswith("interactions.") and ("linear.weight" in n or "skip_tp_full.weight" in n))
                  or n.startswith("products.") for n, _ in named]
        if not any(decays):
            raise ConfigError("training.weight_decay_groups 'mace' needs a MACE model (no interactions.*.linear "
                             "or products.* parameters)")
        return [{"params": [p for (_, p), d in zip(named, decays) if d], "weight_decay": self.weight_decay},
                {"params": [p for (_, p), d in zip(named, decays) if not d], "weight_decay": 0.0}]

    def configure_optimizers(self):
        kind = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam}[self.optimizer_name]
        optimizer = kind(self.parameter_groups(), lr=self.lr, amsgrad=self.amsgrad)
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, factor=self.lr_factor, patience=self.lr_patience
        )
        # Lightning saves and restores the scheduler's state; PlateauStep steps it
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": "val_loss"}}

    def lr_scheduler_step(self, scheduler, metric) -> None:
        """No-op: Lightning would step the plateau scheduler after the epoch's checkpoint is written and
        skip that step on resume, so a resumed run would drift; :class:`PlateauStep` steps it instead."""

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["ffpt_run"] = self.run_record
        checkpoint["ffpt_rng"] = rng_states()
        checkpoint["ffpt_non_finite_in_a_row"] = self.non_finite_in_a_row
        checkpoint["ffpt_wall_seconds"] = self.wall_seconds()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if "ffpt_rng" in checkpoint:
            set_rng_states(checkpoint["ffpt_rng"])
        self.non_finite_in_a_row = checkpoint.get("ffpt_non_finite_in_a_row", 0)
        self.wall_seconds_before = checkpoint.get("ffpt_wall_seconds", 0.0)
        self.fit_started = time.perf_counter()


class PlateauStep(Callback):
    """Steps the ReduceLROnPlateau scheduler on the epoch's ``val_loss`` before the epoch's checkpoint
    is written (Lightning runs ModelCheckpoint callbacks last), so the checkpoint holds the stepped state.
    Not after the last epoch before ``swa_start`` nor later: stage two has its own learning rate."""

    def __init__(self, swa_start: int | None = None):
        self.swa_start = swa_start

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or "val_loss" not in trainer.callback_metrics:
            return
        if self.swa_start is not None and trainer.current_epoch + 1 >= self.swa_start:
            return
        for config in trainer.lr_scheduler_configs:
            config.scheduler.step(trainer.callback_metrics["val_loss"])


def rng_states() -> dict:
    """The global random states (python, numpy, torch CPU and CUDA) of this process, as plain types
    and tensors (which Lightning's ``weights_only`` checkpoint loading accepts)."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    numpy_state = (name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss))
    states = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict) -> None:
    """Restore what :func:`rng_states` returned."""
    random.setstate(states["python"])
    name, keys, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])


class StageTwo(Callback):
    """MACE's second training stage (mace_run_train ``--swa``): at the start of every epoch from ``start``
    (0-based) on, the loss weights and the learning rate of every parameter group are set to the stage's
    values (``None``: unchanged); at epoch ``start`` itself the best checkpoint and early stopping start
    afresh, since ``val_loss`` changes meaning with the weights. Set from the epoch number alone, so a run
    resumed on either side of the switch repeats the uninterrupted one."""

    def __init__(self, start: int, lr: float | None = None, energy_weight: float | None = None,
                 forces_weight: float | None = None):
        self.start, self.lr = start, lr
        self.energy_weight, self.forces_weight = energy_weight, forces_weight

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch < self.start:
            return
        if self.energy_weight is not None:
            pl_module.energy_weight = self.energy_weight
        if self.forces_weight is not None:
            pl_module.forces_weight = self.forces_weight
        if self.lr is not None:
            for optimizer in trainer.optimizers:
                for group in optimizer.param_groups:
                    group["lr"] = self.lr
        if trainer.current_epoch == self.start:
            self._restart_selection(trainer)

    @staticmethod
    def _restart_selection(trainer: L.Trainer) -> None:
        from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

        for callback in trainer.callbacks:
            if isinstance(callback, ModelCheckpoint) and callback.monitor is not None:
                callback.best_k_models = {}
                callback.kth_best_model_path = ""
                callback.kth_value = torch.tensor(torch.inf)
                callback.best_model_score = None
                callback.best_model_path = ""
            if isinstance(callback, EarlyStopping):
                callback.wait_count = 0
                callback.best_score = torch.tensor(torch.inf if callback.mode == "min" else -torch.inf)


def ema(decay: float, warmup: bool = False):
    """Average of :class:`torch.optim.swa_utils.AveragedModel`: each update keeps a share ``decay`` of the
    average; with ``warmup`` torch_ema's (MACE's) warm-up, the k-th update keeping min(decay, (1 + k) /
    (10 + k)), so that the average follows the first steps instead of holding the initial weights for
    ~1/(1 - decay) steps. Integer and boolean tensors (buffers such as MACE's cutoff-envelope order or
    atomic numbers) are taken from the model, not averaged: an average truncated back to an integer
    would change them (an order 5 became 4)."""

    def average(averaged: torch.Tensor, current: torch.Tensor, num_averaged: torch.Tensor) -> torch.Tensor:
        if not averaged.is_floating_point():
            return current
        k = float(num_averaged) + 1  # the first update copies the weights (torch_ema's: its k = 1)
        kept = min(decay, (1 + k) / (10 + k)) if warmup else decay
        return kept * averaged + (1 - kept) * current

    return average


class EMAWeights(WeightAveraging):
    """Lightning's weight averaging after every optimizer step with :func:`ema`'s average (the model's
    parameters and floating-point buffers; validation and the saved model use the average)."""

    def __init__(self, decay: float, warmup: bool = False):
        super().__init__(avg_fn=ema(decay, warmup))
