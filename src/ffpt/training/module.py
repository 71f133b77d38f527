"""The Lightning module: energy + force loss, metrics in meV/atom and meV/A."""

from __future__ import annotations

import lightning as L
import torch

from ffpt.models.graph import AtomicGraph
from ffpt.models.potential import InteratomicPotential


def loss_terms(
    model: InteratomicPotential, batch: AtomicGraph, training: bool, huber_delta: float | None = None
) -> dict[str, torch.Tensor]:
    """Loss terms (mean squared errors) and absolute errors of energy per atom (eV) and force components (eV/A).

    With ``huber_delta`` the loss terms are Huber losses instead (quadratic below ``huber_delta``,
    linear above, in eV/atom and eV/A), which keeps a few frames with huge forces from dominating.
    """
    pred = model(batch, forces=True, training=training)
    n = batch.n_atoms.to(pred.energy.dtype)
    de = (pred.energy - batch.energy) / n
    df = pred.forces - batch.forces
    if huber_delta is None:
        energy_loss, forces_loss = (de**2).mean(), (df**2).mean()
    else:  # scaled by 2 so that it equals the squared error below delta
        zero_e, zero_f = torch.zeros_like(de), torch.zeros_like(df)
        energy_loss = 2 * torch.nn.functional.huber_loss(de, zero_e, delta=huber_delta)
        forces_loss = 2 * torch.nn.functional.huber_loss(df, zero_f, delta=huber_delta)
    return {
        "energy_loss": energy_loss,
        "forces_loss": forces_loss,
        "energy_mae": de.abs().mean(),
        "forces_mae": df.abs().mean(),
    }


class PotentialModule(L.LightningModule):
    """Trains an :class:`InteratomicPotential` with loss = w_E MSE(E/N) + w_F MSE(F) (or Huber)."""

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
    ):
        super().__init__()
        self.model = model
        self.lr, self.weight_decay = lr, weight_decay
        self.energy_weight, self.forces_weight = energy_weight, forces_weight
        self.lr_factor, self.lr_patience = lr_factor, lr_patience
        self.huber_delta = huber_delta
        self.max_non_finite = 20  # consecutive non-finite training batches before giving up
        self.non_finite_in_a_row = 0

    def _step(self, batch: AtomicGraph, stage: str) -> torch.Tensor | None:
        with torch.enable_grad():
            terms = loss_terms(self.model, batch, training=stage == "train", huber_delta=self.huber_delta)
        loss = self.energy_weight * terms["energy_loss"] + self.forces_weight * terms["forces_loss"]
        if stage == "train" and not torch.isfinite(loss):
            return self._skip_non_finite(loss)
        if stage == "train":
            self.non_finite_in_a_row = 0
        size = batch.n_graphs
        self.log(f"{stage}_loss", loss, batch_size=size, prog_bar=stage == "val", on_epoch=True, on_step=False)
        self.log(f"{stage}_energy_mae_mev_per_atom", 1e3 * terms["energy_mae"], batch_size=size, on_epoch=True, on_step=False)
        self.log(
            f"{stage}_forces_mae_mev_per_a", 1e3 * terms["forces_mae"], batch_size=size,
            prog_bar=stage == "val", on_epoch=True, on_step=False,
        )
        return loss

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

    def configure_optimizers(self):
        params = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, factor=self.lr_factor, patience=self.lr_patience
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": "val_loss"}}
