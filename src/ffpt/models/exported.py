"""The ASE calculator of an exported model (``ffpt export``, :mod:`ffpt.models.export`): runs the
compiled ``.pt2`` package, one frame per call (batched MD replicas call it on many:
:class:`ffpt.models.batched.PackageBatch`); builds the neighbour list itself (vesin) and needs no
training stack."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import zipfile
from pathlib import Path

import torch
from torch.utils import _pytree as pytree

from ffpt.errors import short_reason
from ffpt.models.calculator import GraphCalculator
from ffpt.models.model_file import ModelFileError
from ffpt.models.potential import ModelInputError
from ffpt.models.graph import AtomicGraph, NeighborListBuilder

METADATA_KEY = "ffpt"  # the package metadata entry holding the JSON description (see export.py)
EXPORT_FORMAT = "ffpt-export"
EXPORT_FORMAT_VERSION = 2  # 2: many frames per call (batch input); 1: one frame
INPUTS = ("positions", "species", "batch", "edge_index", "shifts", "cell", "spin")
MIN_SIZE = 2  # fewest atoms, neighbour pairs and frames a package takes (torch.export specialises sizes 0 and 1)


def flat_inputs(graph: AtomicGraph, min_frames: int = MIN_SIZE) -> tuple[torch.Tensor, ...]:
    """The package inputs of a graph of one or more frames (order and units: :mod:`ffpt.models.export`),
    padded with empty frames (no atoms: energy and stress zero) to at least ``min_frames``."""
    cell, spin = graph.cell, graph.spin
    missing = min_frames - graph.n_graphs
    if missing > 0:
        cell = torch.cat([cell, cell.new_zeros((missing, 3, 3))])
        spin = torch.cat([spin, spin.new_zeros(missing)])
    return graph.positions, graph.species, graph.batch, graph.edge_index, graph.shifts, cell, spin


def one_frame_inputs(graph: AtomicGraph) -> tuple[torch.Tensor, ...]:
    """The inputs of a format 1 package (one frame: no batch, cell (3, 3), spin (1,))."""
    return graph.positions, graph.species, graph.edge_index, graph.shifts, graph.cell[0], graph.spin


def with_distant_pair(graph: AtomicGraph) -> AtomicGraph:
    """A molecular frame without neighbour pairs (e.g. a molecule dissociated into atoms farther apart
    than the cutoff) given atoms 0 and 1 as a pair: with no pair in the neighbour list they are beyond
    the cutoff, where every radial term and its derivative is exactly zero, so energy and forces are
    unchanged while the package gets the two edges it needs. Other graphs are returned as they are."""
    n_atoms, n_edges = graph.positions.shape[0], graph.edge_index.shape[1]
    if n_edges > 0 or n_atoms < MIN_SIZE or bool(graph.cell.abs().sum() > 0):
        return graph
    edge_index = torch.tensor([[0, 1], [1, 0]], dtype=graph.edge_index.dtype, device=graph.edge_index.device)
    shifts = torch.zeros((2, 3), dtype=graph.shifts.dtype, device=graph.shifts.device)
    return dataclasses.replace(graph, edge_index=edge_index, shifts=shifts)


def is_package(path: str | os.PathLike) -> bool:
    """Whether ``path`` names an exported package (by its ``.pt2`` suffix)."""
    return Path(path).suffix == ".pt2"


def load_package(path: str | os.PathLike):
    """(compiled callable, metadata dict) of a ``.pt2`` package; any problem is a :class:`ModelFileError`."""
    from torch._inductor import aoti_load_package

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such exported model")
    if not zipfile.is_zipfile(path):
        raise ModelFileError(f"{path}: not an exported model package (not a .pt2 archive), truncated?")
    try:
        compiled = aoti_load_package(io.BytesIO(path.read_bytes()))
        info = json.loads(compiled.get_metadata().get(METADATA_KEY, "{}"))
    except Exception as exc:  # torch raises many types for foreign or damaged packages
        reason = short_reason(exc)
        raise ModelFileError(f"{path}: cannot load the exported model ({reason})") from None
    if info.get("format") != EXPORT_FORMAT:
        raise ModelFileError(f"{path}: not an ffpt export (no '{METADATA_KEY}' metadata; made by ffpt export?)")
    return compiled, info


def package_runner(compiled):
    """``compiled`` as a callable of the flat inputs returning (energy, forces, stress), without
    re-reading the package's call spec on every call (AOTInductor's ``__call__`` parses it each time,
    a sizeable part of a small molecule's step); ``compiled`` itself if its spec is not that."""
    try:
        in_spec, out_spec = (pytree.treespec_loads(spec) for spec in compiled.loader.get_call_spec())
        flat = out_spec.type is tuple and all(child.is_leaf() for child in out_spec.children())
        boxed_run = compiled.loader.boxed_run
    except (AttributeError, TypeError, ValueError):  # another torch's package object: its own call
        return compiled
    if not flat or out_spec.num_leaves != 3 or in_spec.num_leaves not in (6, len(INPUTS)):
        return compiled

    def run(*inputs: torch.Tensor) -> list[torch.Tensor]:
        return boxed_run(list(inputs))

    return run


class ExportedCalculator(GraphCalculator):
    """Energy (eV), forces (eV/A) and stress (eV/A^3, periodic cells) from an ``ffpt export`` package.
    The package is compiled for CPU; ``device`` must be ``cpu``. ``package``: the (compiled, metadata) of
    ``path`` when loaded already (:func:`load_package`)."""

    committee = False  # whether the calculator takes committee packages (``committee`` in the metadata)

    def __init__(self, path: str | os.PathLike, device: str = "cpu", package: tuple | None = None, **kwargs):
        super().__init__(**kwargs)
        self.source = str(path)
        self.compiled, self.info = package if package is not None else load_package(path)
        if bool(self.info.get("committee")) != self.committee:
            kind = "a committee" if self.info.get("committee") else "a one-model"
            raise ModelFileError(f"{path}: {kind} package, not for {type(self).__name__} "
                                 "(ffpt.load_calculator picks the calculator)")
        self.device = torch.device(device)
        self.elements = [int(z) for z in self.info["elements"]]
        self.cutoff = float(self.info["cutoff"])
        self.max_spin = int(self.info["max_spin"])
        self.architecture = str(self.info["architecture"])
        self.dtype = getattr(torch, self.info["dtype"])
        self.neighbors = NeighborListBuilder(self.cutoff)
        self.run_package = package_runner(self.compiled)
        self.batched = "batch" in self.info.get("inputs", ())  # format 2: many frames per call

    def run(self, graph) -> list[torch.Tensor]:
        """The package's outputs for the G frames of ``graph``: energy (G,) eV, forces (N, 3) eV/A, stress
        (G, 3, 3) eV/A^3; a committee package's with a leading member axis (K, ...)."""
        graph = with_distant_pair(graph)
        if min(graph.positions.shape[0], graph.edge_index.shape[1]) < MIN_SIZE:
            raise ModelInputError(f"{self.source}: an exported model takes frames of at least {MIN_SIZE} atoms "
                                  f"and {MIN_SIZE} neighbour pairs within {self.cutoff} A; use the .pt model file")
        n = graph.n_graphs
        if self.batched:
            energy, forces, stress = self.run_package(*flat_inputs(graph))
            return [energy[..., :n], forces, stress[..., :n, :, :]]
        if n != 1:
            raise ModelInputError(f"{self.source}: a format 1 package takes one frame per call (export it again "
                                  "for batched replicas)")
        energy, forces, stress = self.run_package(*one_frame_inputs(graph))
        return [energy.unsqueeze(-1) if self.committee else energy, forces, stress.unsqueeze(-3)]

    def evaluate(self, graph, stress: bool):
        energy, forces, stress_3x3 = self.run(graph)
        return (float(energy[0]), forces.double().numpy(),
                stress_3x3[0].double().numpy() if stress else None)
