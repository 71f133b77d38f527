"""Batched predictions of a model on frames (for evaluation; MD uses the ASE calculator)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from ase import Atoms

from ffpt.errors import UserError
from ffpt.models.graph import NeighborListBuilder, collate, graph_from_atoms
from ffpt.models.potential import InteratomicPotential


def predict_frames(
    model: InteratomicPotential, frames: Sequence[Atoms], batch_size: int = 64, device: str = "cpu",
    prior: bool = True,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Energies (n_frames,) eV and forces [(n_atoms, 3)] eV/A of ``model`` on ``frames`` (``prior=False``:
    without the model's repulsion prior)."""
    dtype = next(model.parameters()).dtype
    model = model.to(device).eval()
    neighbors = NeighborListBuilder(model.cutoff)
    energies, forces = [], []
    for start in range(0, len(frames), batch_size):
        chunk = frames[start : start + batch_size]
        for k, atoms in enumerate(chunk):
            model.check_frame(atoms, where=f"frame {start + k}")
        batch = collate([graph_from_atoms(a, model.elements, neighbors, dtype=dtype) for a in chunk]).to(device)
        pred = model(batch, forces=True, prior=prior)
        energies.append(pred.energy.detach().cpu().double().numpy())
        f = pred.forces.detach().cpu().double().numpy()
        splits = np.cumsum([len(a) for a in chunk])[:-1]
        forces.extend(np.split(f, splits))
    return np.concatenate(energies) if energies else np.zeros(0), forces


def network_energies(model: InteratomicPotential, frames: Sequence[Atoms], batch_size: int = 64) -> np.ndarray:
    """Energies (eV) of the network alone, without per-element references."""
    neighbors = NeighborListBuilder(model.cutoff)
    dtype = next(model.parameters()).dtype
    out = []
    with torch.no_grad():
        for start in range(0, len(frames), batch_size):
            chunk = frames[start : start + batch_size]
            batch = collate([graph_from_atoms(a, model.elements, neighbors, dtype=dtype) for a in chunk])
            out.append(model.network_energy(batch, batch.edge_vectors()).double().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def calculator_predictions(calculator, frames: Sequence[Atoms], names: Sequence[str] | None = None
                           ) -> tuple[np.ndarray, list[np.ndarray]]:
    """Energies (n_frames,) eV and forces [(n_atoms, 3)] eV/A of any ASE calculator (e.g. a committee or
    an exported package) on ``frames``, one frame at a time; a frame the calculator refuses raises its
    :class:`UserError` prefixed with the frame's name in ``names`` (e.g. "data.xyz frame 3")."""
    energies, forces = [], []
    for k, atoms in enumerate(frames):
        atoms = atoms.copy()
        atoms.calc = calculator
        try:
            energies.append(atoms.get_potential_energy())
        except UserError as exc:
            if names is None:
                raise
            raise type(exc)(f"{names[k]}: {exc}") from None
        forces.append(atoms.get_forces())
    return np.array(energies), forces
