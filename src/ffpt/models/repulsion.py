"""Screened nuclear repulsion (ZBL) at short range: a physical prior where data has no atoms.

Ziegler, Biersack & Littmark (1985) universal screened Coulomb repulsion between nuclei i and j,

    E_ij = k_e Z_i Z_j / r * phi(r / a) * f(r / r_ij),   a = 0.8854 a_0 / (Z_i^0.23 + Z_j^0.23),
    phi(x) = 0.18175 e^{-3.19980 x} + 0.50986 e^{-0.94229 x} + 0.28022 e^{-0.40290 x} + 0.02817 e^{-0.20162 x},

switched off smoothly (polynomial envelope, p = 6) at r_ij = s_i R_i + s_j R_j, with R the covalent
radii and s the ``scale`` (one number for every element, or one per element symbol: elements not named
keep ``DEFAULT_SCALE``), so it only acts on atoms pushed closer than a bond. Energies in eV, distances
in A.
"""

from __future__ import annotations

import torch
from ase import units
from ase.data import chemical_symbols, covalent_radii
from torch import nn

from ffpt.models.graph import AtomicGraph
from ffpt.models.radial import polynomial_envelope

COULOMB_EV_A = units.Hartree * units.Bohr  # e^2 / (4 pi eps0), eV A
SCREENING_LENGTH_A = 0.8854 * units.Bohr  # a = this / (Z_i^0.23 + Z_j^0.23)
PHI_COEFFICIENTS = (0.18175, 0.50986, 0.28022, 0.02817)
PHI_EXPONENTS = (3.19980, 0.94229, 0.40290, 0.20162)
DEFAULT_SCALE = 0.75


def element_scales(elements: list[int], scale: float | dict[str, float]) -> list[float]:
    """The range scale s of each atomic number in ``elements``: ``scale`` itself, or its entry for
    that element symbol (``DEFAULT_SCALE`` where it has none)."""
    if isinstance(scale, dict):
        return [float(scale.get(chemical_symbols[z], DEFAULT_SCALE)) for z in elements]
    return [float(scale)] * len(elements)


class ZBLRepulsion(nn.Module):
    """Pair repulsion per graph (G,) eV from the edges of a graph whose species index ``elements``."""

    def __init__(self, elements: list[int], scale: float | dict[str, float] = 1.0):
        super().__init__()
        z = torch.tensor(elements, dtype=torch.get_default_dtype())
        self.register_buffer("charge", z)
        scales = torch.tensor(element_scales(elements, scale), dtype=z.dtype)
        self.register_buffer("radius", scales * torch.tensor(covalent_radii[elements], dtype=z.dtype))
        self.register_buffer("coefficients", torch.tensor(PHI_COEFFICIENTS, dtype=z.dtype))
        self.register_buffer("exponents", torch.tensor(PHI_EXPONENTS, dtype=z.dtype))

    def switch_off_distance(self, graph: AtomicGraph, dtype: torch.dtype) -> torch.Tensor:
        """Per edge, the distance (A) beyond which the prior is zero: s_i R_i + s_j R_j."""
        i, j = graph.edge_index
        return (self.radius[graph.species[i]] + self.radius[graph.species[j]]).to(dtype)

    def network_weight(self, graph: AtomicGraph, r: torch.Tensor) -> torch.Tensor:
        """Per edge, 0 inside half the prior's range, 1 beyond all of it, smooth between (polynomial
        envelope): the weight of the edge in the network's messages when the core is the prior's alone."""
        outer = self.switch_off_distance(graph, r.dtype)
        x = torch.clamp((r - 0.5 * outer) / (0.5 * outer), 0.0, 1.0)
        return 1.0 - polynomial_envelope(x)

    def forward(self, graph: AtomicGraph, edge_vectors: torch.Tensor) -> torch.Tensor:
        i, j = graph.edge_index
        si, sj = graph.species[i], graph.species[j]
        r = torch.linalg.norm(edge_vectors, dim=-1)
        zi, zj = self.charge[si].to(r.dtype), self.charge[sj].to(r.dtype)
        a = SCREENING_LENGTH_A / (zi**0.23 + zj**0.23)
        phi = (self.coefficients.to(r.dtype) * torch.exp(-self.exponents.to(r.dtype) * (r / a).unsqueeze(-1))).sum(-1)
        switch = polynomial_envelope(r / self.switch_off_distance(graph, r.dtype))
        pair = 0.5 * COULOMB_EV_A * zi * zj / r * phi * switch  # each pair appears as i->j and j->i
        out = torch.zeros(graph.n_graphs, dtype=r.dtype, device=r.device)
        return out.index_add_(0, graph.batch[i], pair)
