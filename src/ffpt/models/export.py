"""Compiled export of a model: an AOTInductor package (``.pt2``) of energy, forces and stress.

The route (NequIP's): a flat-tensor wrapper of the model -> ``make_fx(tracing_mode="symbolic")``
writes the autograd backward (forces, stress) out as ordinary ops -> ``torch.export`` with dynamic
atom and edge counts -> ``torch._inductor.aoti_compile_and_package``. Architectures with TorchScript
parts (MACE's e3nn blocks) are traced through plain-Python twins (their ``traceable()``). The package
runs from Python (:mod:`ffpt.models.exported`, no training stack) and from C++ (``AOTIModelPackageLoader``).

Package inputs (format 2: G >= 2 frames as one disjoint graph; a single frame is padded with an empty
second one by :func:`~ffpt.models.exported.flat_inputs`): positions (N, 3) A; species (N,) int64 index into
the model's elements; batch (N,) int64 frame of each atom; edge_index (2, E) int64 as (receiver i, sender
j) of a full neighbour list within the cutoff, with r_ij = r_j - r_i + shifts @ cell[batch[i]]; shifts
(E, 3) int64; cell (G, 3, 3) A (zeros without periodicity); spin (G,) int64 multiplicity (0: not given).
Outputs: energy (G,) eV, forces (N, 3) eV/A, stress (G, 3, 3) eV/A^3 (meaningful for cells periodic in
all three directions only). One call evaluates many frames (batched MD replicas,
:class:`ffpt.models.batched.PackageBatch`); a frame's outputs do not depend on the others'. The model's
elements, cutoff, dtype, spin input and provenance are stored as package metadata (key ``ffpt``, JSON).
Format 1 packages (one frame: no batch input, cell (3, 3), spin (1,)) still load.

A committee whose members stack (:func:`ffpt.models.stacked.stacking_obstacle`) exports as one package
of its :class:`~ffpt.models.stacked.StackedNewtonNet`: the same inputs, every member's outputs (energy
(K, G) eV, forces (K, N, 3) eV/A, stress (K, G, 3, 3) eV/A^3), and ``committee``: K in the metadata.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from ase import Atoms
from torch import nn

from ffpt import __version__
from ffpt.errors import UserError, short_reason
from ffpt.fileio import atomic_path
from ffpt.models.graph import AtomicGraph, NeighborListBuilder, collate, graph_from_atoms
from ffpt.models.exported import EXPORT_FORMAT, EXPORT_FORMAT_VERSION, INPUTS, METADATA_KEY, MIN_SIZE, flat_inputs
from ffpt.models.potential import InteratomicPotential
from ffpt.models.stacked import StackedNewtonNet, stacking_obstacle

OUTPUTS = ("energy", "forces", "stress")


class ExportError(UserError):
    """An export that cannot be made or that does not reproduce the eager model; names the file."""


class FlatPotential(nn.Module):
    """Frames as flat tensors (see the module docstring) -> (energy (G,), forces (N, 3), stress (G, 3, 3)),
    or of a stacked committee of K: (energy (K, G), forces (K, N, 3), stress (K, G, 3, 3))."""

    def __init__(self, model: InteratomicPotential | StackedNewtonNet):
        super().__init__()
        self.model = model

    def forward(self, positions, species, batch, edge_index, shifts, cell, spin):
        graph = AtomicGraph(
            positions=positions, species=species, batch=batch, edge_index=edge_index, shifts=shifts, cell=cell,
            n_atoms=torch.zeros_like(spin), spin=spin,
        )  # n_atoms only counts graphs here
        if isinstance(self.model, StackedNewtonNet):
            pred = self.model(graph, stress=True, check=False)
        else:
            pred = self.model(graph, forces=True, stress=True, check=False)
        return pred.energy, pred.forces, pred.stress


def probe_frames(model: InteratomicPotential, seed: int = 0) -> list[Atoms]:
    """Two frames of the model's elements with different atom and edge counts: a 10-atom cluster and a
    periodic 24-atom box (for stress), atoms on a jittered 1.6 A grid (no overlaps, many neighbours)."""
    rng = np.random.default_rng(seed)
    frames = []
    for shape, periodic in (((2, 5, 1), False), ((2, 3, 4), True)):
        grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1).reshape(-1, 3)
        positions = 1.6 * grid + rng.uniform(-0.2, 0.2, size=grid.shape)
        numbers = [model.elements[k % len(model.elements)] for k in range(len(grid))]
        atoms = Atoms(numbers=numbers, positions=positions)
        if periodic:
            atoms.cell = 1.6 * np.array(shape, dtype=float)
            atoms.pbc = True
        frames.append(atoms)
    return frames


def _traceable(model: InteratomicPotential):
    """A context giving the model as plain Python modules: an architecture with TorchScript parts (MACE)
    provides ``traceable()``; others are traced as they are."""
    return model.traceable() if hasattr(model, "traceable") else contextlib.nullcontext(model)


def _traced(model: InteratomicPotential | StackedNewtonNet, example: tuple[torch.Tensor, ...]):
    """The flat model as an ExportedProgram with dynamic atom, edge and frame counts."""
    from torch.export import Dim
    from torch.fx.experimental.proxy_tensor import make_fx

    with _traceable(model) as plain:
        for p in plain.parameters():
            p.requires_grad_(False)
        graph_module = make_fx(FlatPotential(plain), tracing_mode="symbolic", _allow_non_fake_inputs=True)(*example)
    atoms, edges, frames = Dim("atoms", min=MIN_SIZE), Dim("edges", min=MIN_SIZE), Dim("frames", min=MIN_SIZE)
    dynamic = ({0: atoms}, {0: atoms}, {0: atoms}, {1: edges}, {0: edges}, {0: frames}, {0: frames})
    return torch.export.export(graph_module, example, dynamic_shapes=dynamic)


def _tolerance(dtype: torch.dtype) -> float:
    """Relative agreement asked of the package: float32 round-off (a few hundred eps of float32)."""
    return 500 * torch.finfo(torch.float32).eps if dtype == torch.float32 else 1e-9


ROUNDOFF_FACTOR = 10.0  # the package may be this many times further from the exact answer than eager is


def compare(reference: tuple, compiled: tuple, dtype: torch.dtype, periodic: bool,
            exact: tuple | None = None) -> str | None:
    """None if the compiled outputs match the eager ones within round-off, else what differs.

    Round-off is ``_tolerance`` relative to the output's largest entry, or, where ``exact`` (the eager
    model in float64) is given and the eager model's own error against it is larger, up to
    ``ROUNDOFF_FACTOR`` times that error: forces summed from large cancelling terms (a model far outside
    its data on a dense probe frame) lose more digits in float32 than a fixed relative bound allows."""
    tol = _tolerance(dtype)
    names = OUTPUTS if periodic else OUTPUTS[:2]
    exact = exact if exact is not None else reference
    for name, a, b, x in zip(names, reference, compiled, exact):
        a, b, x = a.detach().double(), b.detach().double(), x.detach().double()
        allowed = max(tol * max(1.0, float(a.abs().max())), ROUNDOFF_FACTOR * float((a - x).abs().max()))
        err = float((a - b).abs().max())
        if not np.isfinite(err) or not np.isfinite(allowed) or err > allowed:
            return f"{name} differs by {err:.3g} (allowed {allowed:.3g})"
    return None


def _as_double(inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """The flat inputs with floating tensors (positions, cell) in float64."""
    return tuple(t.double() if t.is_floating_point() else t for t in inputs)


def export_model(
    model: InteratomicPotential, out: str | os.PathLike, dtype: torch.dtype | None = None,
    metadata: dict | None = None,
) -> Path:
    """Write the AOTInductor package of ``model`` to ``out`` (atomically) after checking it against the
    eager model on :func:`probe_frames`; an :class:`ExportError` if it does not match."""
    model = _prepared(model, dtype)
    exact = copy.deepcopy(model).double() if _dtype(model) != torch.float64 else None
    return _export(model, model, exact, Path(out), metadata or {})


def export_committee(
    models: Sequence[InteratomicPotential], out: str | os.PathLike, dtype: torch.dtype | None = None,
    metadata: dict | None = None,
) -> Path:
    """Write one AOTInductor package of the committee ``models`` stacked (:class:`StackedNewtonNet`: every
    member's outputs in one call) to ``out``, checked against the eager stacked model; an
    :class:`ExportError` if the members do not stack or the package does not match."""
    out = Path(out)
    models = [_prepared(m, dtype) for m in models]
    obstacle = stacking_obstacle(models)
    if obstacle is not None:
        raise ExportError(f"{out}: the committee does not stack into one package: {obstacle}")
    exact = (StackedNewtonNet([copy.deepcopy(m).double() for m in models])
             if _dtype(models[0]) != torch.float64 else None)
    return _export(StackedNewtonNet(models), models[0], exact, out, {"committee": len(models), **(metadata or {})})


def _prepared(model: InteratomicPotential, dtype: torch.dtype | None) -> InteratomicPotential:
    """A copy of ``model`` in eval mode, in ``dtype`` (default: its own), without gradients (the caller's
    model keeps its dtype and gradients)."""
    model = copy.deepcopy(model).eval()
    model = model.to(dtype=dtype) if dtype else model
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _dtype(model: InteratomicPotential) -> torch.dtype:
    return next(model.parameters()).dtype


def _export(model: InteratomicPotential | StackedNewtonNet, first: InteratomicPotential,
            exact: nn.Module | None, out: Path, metadata: dict) -> Path:
    """Compile ``model`` (a potential, or a stacked committee whose member ``first`` gives elements, cutoff,
    dtype and spin input) into the package ``out`` if it reproduces the eager model on the probe frames
    (within round-off of ``exact``, the same model in float64, when given)."""
    from torch._inductor import aoti_compile_and_package, aoti_load_package

    dtype = _dtype(first)
    neighbors = NeighborListBuilder(first.cutoff)
    frames = probe_frames(first)
    graphs = [graph_from_atoms(a, first.elements, neighbors, dtype=dtype) for a in frames]
    info = {
        "format": EXPORT_FORMAT, "format_version": EXPORT_FORMAT_VERSION, "architecture": first.architecture,
        "elements": first.elements, "cutoff": first.cutoff, "dtype": str(dtype).replace("torch.", ""),
        "ffpt_version": __version__, "max_spin": first.max_spin, "inputs": list(INPUTS),
        "outputs": list(OUTPUTS), **metadata,
    }
    both = collate(graphs)  # the two probe frames as one call: the example traced, and a check of batching
    try:
        # five frames in the example: symbolic tracing gives input dimensions of equal size one symbol, so a
        # frame count of 2 or 3 would be fixed with the edge_index (2, E) or the (., 3) dimensions
        program = _traced(model, flat_inputs(both, min_frames=5))
    except Exception as exc:  # tracing limits of an architecture: the user learns which, not a traceback
        reason = short_reason(exc)
        raise ExportError(f"{out}: architecture '{first.architecture}' does not trace for export ({reason})") from None
    buffer = io.BytesIO()
    configs = {"aot_inductor.metadata": {METADATA_KEY: json.dumps(info, default=str)}}
    aoti_compile_and_package(program, package_path=buffer, inductor_configs=configs)
    with atomic_path(out) as tmp:
        tmp.write_bytes(buffer.getvalue())
        compiled = aoti_load_package(io.BytesIO(buffer.getvalue()))
        flat = FlatPotential(model)
        flat64 = FlatPotential(exact) if exact is not None else None
        checks = [(graph, bool(atoms.pbc.all()), f"a {len(atoms)}-atom probe frame") for graph, atoms in zip(graphs, frames)]
        checks.append((both, True, "both probe frames in one call"))  # a cluster's stress is zero in both
        for graph, periodic, what in checks:
            inputs = flat_inputs(graph)
            reference = flat64(*_as_double(inputs)) if flat64 is not None else None
            problem = compare(flat(*inputs), compiled(*inputs), dtype, periodic, reference)
            if problem:
                raise ExportError(f"{out}: the compiled package does not reproduce the eager model on "
                                  f"{what} ({problem}); not written")
    return out


def export_file(model_path: str | os.PathLike, out: str | os.PathLike, dtype: str | None = None,
                model_out: str | os.PathLike | None = None) -> dict:
    """``ffpt export``: the model file (or committee file, or ``mace_run_train`` ``.model`` file, converted by
    :mod:`ffpt.models.mace_convert`) ``model_path`` as a checked package ``out`` (``.pt2``); ``dtype``
    "float32"/"float64" (default: the file's); ``model_out``: also write the converted ffpt model file (a
    ``.model`` file only). Returns a summary (paths, dtype, seconds)."""
    import time

    from ffpt.models.committee import is_committee_file, read_committee_file
    from ffpt.models.mace_cli_model import is_mace_cli_model
    from ffpt.models.model_file import load_model, save_model

    out = Path(out)
    if out.suffix != ".pt2":
        raise ExportError(f"{out}: an exported model must end in .pt2 (ffpt.load_calculator goes by the suffix)")
    converting = is_mace_cli_model(model_path)
    if model_out is not None and not converting:
        raise ExportError(f"{model_path}: --model-out writes the ffpt model converted from a mace_run_train "
                          ".model file; this file is none")
    start = time.perf_counter()
    to = getattr(torch, dtype) if dtype else None
    if is_committee_file(model_path):
        models = [load_model(member) for member in read_committee_file(model_path)]
        metadata = {"source": str(model_path), "provenance": [getattr(m, "provenance", {}) for m in models]}
        export_committee(models, out, to, metadata=metadata)
        model = models[0]
    else:
        if converting:
            from ffpt.models.mace_convert import convert_mace_file

            model = convert_mace_file(model_path)
            if model_out is not None:
                save_model(model, model_out, model.provenance)
        else:
            model = load_model(model_path)
        metadata = {"source": str(model_path), "provenance": getattr(model, "provenance", {})}
        export_model(model, out, to, metadata=metadata)
    info = {"model": str(model_path), "package": str(out), "dtype": str(next(model.parameters()).dtype if dtype is None else dtype).replace("torch.", "")}
    if model_out is not None:
        info["model_file"] = str(model_out)
    return {**info, "seconds": round(time.perf_counter() - start, 1)}
