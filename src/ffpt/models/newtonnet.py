"""NewtonNet-class equivariant message passing (after Haghighatlari et al., Digital Discovery 2022).

Atoms carry invariant features s_i (F) and equivariant vector features v_i (3, F). Messages are
symmetric in i, j (m_ij = m_ji), so the latent pair forces f_ij = m_ij r_hat_ij obey Newton's third
law (f_ij = -f_ji). Each layer
  1. s_i += sum_j m^s_ij                                  (invariant message)
  2. F_i  = sum_j m^f_ij r_hat_ij                          (latent force, equivariant)
  3. v_i += F_i + sum_j m^v_ij v_j                        (displacement-like vector features)
  4. s_i += phi_u([s_i, -F_i . U v_i, |W v_i|])            (energy-like update: work of F along v)
with m_ij = phi(s_i) * phi(s_j) * W(rbf(r_ij)) * envelope(r_ij). Pure PyTorch: sums over edges
use ``index_add_``.

With ``spin_states`` > 0 the spin multiplicity of the frame (``info["spin"]``, 0 = not given) is an
input: a learned per-multiplicity vector, initialised to zero, is added to every atom's initial
features, so one network can hold several electronic states of the same geometries (e.g. the
doublet and quartet surfaces of HO2 in hydrogen combustion) without contradictory labels.

With ``zbl`` the energy includes the screened nuclear repulsion of :mod:`ffpt.models.repulsion`
between atoms closer than s_i R_i + s_j R_j (R: covalent radii, s: ``zbl_radius_scale``, one number
or one per element symbol), so atoms pushed together far beyond the training data still repel (the
network learns the rest). The default 0.75 keeps it off vibrating bonds (O-H 0.73 A, O-O 0.99 A, H-H
0.47 A): switched off at the full bond length for every element it raised the combustion error
(BENCHMARKS.md, section 1). The combustion config takes s = 1 for H only (H-H 0.62 A, O-H 0.80 A),
where the learned H-H wall was too soft (BENCHMARKS.md, section 12). With ``zbl_exclusive_core`` the
network's messages between two atoms fade out from the prior's switch-off distance b to b/2, so deep
inside the core the energy is the prior plus the network's energy of the two atoms not seeing each
other: bounded, where an unconstrained network can fall far below the well (section 12).
"""

from __future__ import annotations

import torch
from torch import nn

from ffpt.models.graph import AtomicGraph
from ffpt.models.potential import InteratomicPotential
from ffpt.models.radial import BesselBasis, PolynomialEnvelope
from ffpt.models.repulsion import ZBLRepulsion


def mlp(n_in: int, n_hidden: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, n_hidden), nn.SiLU(), nn.Linear(n_hidden, n_out))


def scatter_sum(values: torch.Tensor, index: torch.Tensor, n: int) -> torch.Tensor:
    """Sum rows of ``values`` into ``n`` rows by ``index``."""
    out = torch.zeros((n,) + values.shape[1:], dtype=values.dtype, device=values.device)
    return out.index_add_(0, index, values)


class NewtonNetLayer(nn.Module):
    """One interaction: symmetric messages, latent forces, vector update, energy-like scalar update."""

    def __init__(self, n_features: int, n_basis: int, avg_num_neighbors: float):
        super().__init__()
        F = n_features
        self.norm = 1.0 / float(avg_num_neighbors)
        self.phi_message = mlp(F, F, 3 * F)
        self.radial_filter = nn.Linear(n_basis, 3 * F)
        self.mix_work = nn.Linear(F, F, bias=False)
        self.mix_norm = nn.Linear(F, F, bias=False)
        self.phi_update = mlp(3 * F, F, F)
        self.phi_gate = mlp(F, F, F)

    def forward(self, s, v, edge_index, rbf, envelope, unit):
        """One layer; ``v`` None stands for all-zero vector features (first layer: skips that message)."""
        i, j = edge_index
        n, F = s.shape
        a = self.phi_message(s)
        # index_select, not a[i]: its backward is a scatter-add rather than a slower accumulating index_put
        m = a.index_select(0, i) * a.index_select(0, j) * self.radial_filter(rbf) * envelope.unsqueeze(-1)
        m_s, m_f, m_v = torch.split(m, F, dim=-1)
        s = s + self.norm * scatter_sum(m_s, i, n)
        latent_force = self.norm * scatter_sum(m_f.unsqueeze(1) * unit.unsqueeze(-1), i, n)
        if v is None:
            v = latent_force
        else:
            v = v + latent_force + self.norm * scatter_sum(m_v.unsqueeze(1) * v.index_select(0, j), i, n)
        work = -(latent_force * self.mix_work(v)).sum(dim=1)
        length = torch.sqrt((self.mix_norm(v) ** 2).sum(dim=1) + 1e-8)
        s = s + self.phi_update(torch.cat([s, work, length], dim=-1))
        v = v * self.phi_gate(s).unsqueeze(1)
        return s, v


class NewtonNet(InteratomicPotential):
    """The default ffpt architecture: NewtonNet-class equivariant message passing network."""

    architecture = "newtonnet"

    def __init__(
        self,
        elements: list[int],
        cutoff: float = 5.0,
        n_features: int = 128,
        n_layers: int = 3,
        n_basis: int = 20,
        avg_num_neighbors: float = 10.0,
        spin_states: int = 0,
        zbl: bool = False,
        zbl_radius_scale: float | dict[str, float] = 0.75,
        zbl_exclusive_core: bool = False,
    ):
        super().__init__(elements, cutoff)
        self._hparams = dict(
            elements=self.elements,
            cutoff=self.cutoff,
            n_features=n_features,
            n_layers=n_layers,
            n_basis=n_basis,
            avg_num_neighbors=float(avg_num_neighbors),
            spin_states=int(spin_states),
            zbl=bool(zbl),
            zbl_radius_scale=dict(zbl_radius_scale) if isinstance(zbl_radius_scale, dict) else float(zbl_radius_scale),
            zbl_exclusive_core=bool(zbl_exclusive_core),
        )
        if zbl_exclusive_core and not zbl:
            raise ValueError("zbl_exclusive_core needs zbl: the core it leaves to the prior would have no prior")
        self.exclusive_core = bool(zbl_exclusive_core)
        self.embedding = nn.Embedding(len(self.elements), n_features)
        self.spin_states = int(spin_states)
        if self.spin_states > 0:
            self.spin_embedding = nn.Embedding(self.spin_states + 1, n_features)
            nn.init.zeros_(self.spin_embedding.weight)
        self.basis = BesselBasis(cutoff, n_basis)
        self.envelope = PolynomialEnvelope(cutoff)
        self.layers = nn.ModuleList(
            NewtonNetLayer(n_features, n_basis, avg_num_neighbors) for _ in range(n_layers)
        )
        self.head = mlp(n_features, n_features // 2, 1)
        if zbl:
            self.repulsion = ZBLRepulsion(self.elements, scale=zbl_radius_scale)

    def hparams(self) -> dict:
        return dict(self._hparams)

    @property
    def max_spin(self) -> int:
        return self.spin_states

    def atomic_energies(self, graph: AtomicGraph, edge_vectors: torch.Tensor) -> torch.Tensor:
        r = torch.linalg.norm(edge_vectors, dim=-1)
        unit = edge_vectors / r.unsqueeze(-1)
        rbf, envelope = self.basis(r), self.envelope(r)
        if self.exclusive_core:  # the network is blind to pairs deep inside the prior's range
            envelope = envelope * self.repulsion.network_weight(graph, r)
        s = self.embedding(graph.species)
        if self.spin_states > 0:  # spins above spin_states are refused by InteratomicPotential.forward
            s = s + self.spin_embedding(graph.spin)[graph.batch]
        v = None  # vector features start at zero
        for layer in self.layers:
            s, v = layer(s, v, graph.edge_index, rbf, envelope, unit)
        return self.head(s).squeeze(-1)
