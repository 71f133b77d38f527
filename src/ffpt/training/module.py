"""The Lightning module: energy + force loss, metrics in meV/atom and meV/A."""

from __future__ import annotations

import lightning as L
import torch

from ffpt.models.graph import AtomicGraph
from ffpt.models.potential import InteratomicPotential


def loss_terms(model: InteratomicPotential, batch: AtomicGraph, training: bool) -> dict[str, torch.Tensor]:
    """Squared and absolute errors of energy per atom (eV) and force components (eV/A)."""
    pred = model(batch, forces=True, training=training)
    n = batch.n_atoms.to(pred.energy.dtype)
    de = (pred.energy - batch.energy) / n
    df = pred.forces - batch.forces
    return {
        "energy_mse": (de**2).mean(),
        "forces_mse": (df**2).mean(),
        "energy_mae": de.abs().mean(),
        "forces_mae": df.abs().mean(),
    }


class PotentialModule(L.LightningModule):
    """Trains an :class:`InteratomicPotential` with loss = w_E MSE(E/N) + w_F MSE(F)."""

    def __init__(
        self,
        model: InteratomicPotential,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        energy_weight: float = 1.0,
        forces_weight: float = 10.0,
        lr_factor: float = 0.5,
        lr_patience: int = 10,
    ):
        super().__init__()
        self.model = model
        self.lr, self.weight_decay = lr, weight_decay
        self.energy_weight, self.forces_weight = energy_weight, forces_weight
        self.lr_factor, self.lr_patience = lr_factor, lr_patience

    def _step(self, batch: AtomicGraph, stage: str) -> torch.Tensor:
        with torch.enable_grad():
            terms = loss_terms(self.model, batch, training=stage == "train")
        loss = self.energy_weight * terms["energy_mse"] + self.forces_weight * terms["forces_mse"]
        size = batch.n_graphs
        self.log(f"{stage}_loss", loss, batch_size=size, prog_bar=stage == "val", on_epoch=True, on_step=False)
        self.log(f"{stage}_energy_mae_mev_per_atom", 1e3 * terms["energy_mae"], batch_size=size, on_epoch=True, on_step=False)
        self.log(
            f"{stage}_forces_mae_mev_per_a", 1e3 * terms["forces_mae"], batch_size=size,
            prog_bar=stage == "val", on_epoch=True, on_step=False,
        )
        return loss

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
