"""K NewtonNet models of identical hyper-parameters evaluated as one grouped graph (a committee in one call).

The weights of the K members are stacked along a leading member axis (a Linear's (out, in) weight becomes
(K, in, out) for a batched matmul), and every feature tensor carries that axis: scalars s (K, N, F),
vectors v (K, N, 3, F). Each member gets its own copy of the positions (K, N, 3) (and of the strain,
(K, G, 3, 3), for stress), so one backward pass of the summed energies gives every member's own
forces: member k's energy depends on copy k only. The arithmetic is :class:`NewtonNetLayer`'s and
:meth:`InteratomicPotential.forward`'s, member by member, so results equal one-at-a-time evaluation
to float rounding (tests/test_committee_batched.py checks it against the loop in float64).

Not ``torch.func.vmap`` over ``functional_call``: NewtonNet's sums over edges are in-place
``index_add_`` on fresh zeros, which vmap refuses when the summed values are batched and the zeros
are not; the grouped graph needs no change to the architecture and runs the same number of ops as
one model. Only NewtonNet stacks: :func:`stacking_obstacle` says why a set of models does not (another
architecture such as MACE, whose e3nn tensor products have no stacked form here; different
hyper-parameters; a member compiled with ``torch.compile``), and the committee then loops over members.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ffpt.models.graph import AtomicGraph
from ffpt.models.newtonnet import NewtonNet
from ffpt.models.potential import Prediction, cell_volume

# buffers every member computes from its hyper-parameters alone: shared, not stacked (checked equal)
SHARED_BUFFERS = ("basis.", "repulsion.")


def stacking_obstacle(models: Sequence[nn.Module]) -> str | None:
    """Why ``models`` cannot be one :class:`StackedNewtonNet` (one line), or None if they can."""
    first = models[0]
    for k, model in enumerate(models):
        if type(model) is not NewtonNet:
            name = getattr(model, "architecture", type(model).__name__)
            return f"member {k} is a '{name}' model; only NewtonNet members stack"
        if "atomic_energies" in vars(model):
            return f"member {k} runs through torch.compile"
        if model.hparams() != first.hparams():
            diff = sorted(key for key, value in model.hparams().items() if first.hparams().get(key) != value)
            return f"member {k} differs from member 0 in hyper-parameters {diff}"
        state, first_state = model.state_dict(), first.state_dict()
        if state.keys() != first_state.keys():
            return f"member {k} has other weights than member 0"
        for key, value in state.items():
            ref = first_state[key]
            if value.dtype != ref.dtype or value.device != ref.device or value.shape != ref.shape:
                return f"member {k}: weight {key} has another dtype, device or shape than member 0's"
            if key.startswith(SHARED_BUFFERS) and not torch.equal(value, ref):
                return f"member {k}: buffer {key} differs from member 0's"
    return None


class StackedNewtonNet(nn.Module):
    """K NewtonNet members (same hyper-parameters, float type and device) as one model: energies (K, G) eV,
    forces (K, N, 3) eV/A and stress (K, G, 3, 3) eV/A^3 of a graph in one call. Inference only: the
    stacked weights are copies, without gradients, of the members' weights when it was made."""

    def __init__(self, models: Sequence[NewtonNet]):
        super().__init__()
        models = list(models)
        obstacle = stacking_obstacle(models)
        if obstacle is not None:
            raise ValueError(f"cannot stack these models: {obstacle}")
        first = models[0]
        self.n_members = len(models)
        # equal in every member (checked): the radial basis, envelope and repulsion prior, the spin check
        self.basis, self.envelope, self.repulsion = first.basis, first.envelope, first.repulsion
        self._check_spin = first._check_graph_spin
        self.norm = first.layers[0].norm
        self.exclusive_core = first.exclusive_core
        self.spin_states = first.spin_states
        states = [m.state_dict() for m in models]
        stacked = {key: torch.stack([s[key] for s in states]).detach() for key in states[0]
                   if not key.startswith(SHARED_BUFFERS)}
        def keep(name: str, tensor: torch.Tensor) -> None:
            self.register_buffer(name, tensor.contiguous(), persistent=False)

        def linear(prefix: str, name: str) -> None:
            keep(f"{name}_w", stacked.pop(f"{prefix}.weight").transpose(1, 2))  # (K, in, out)
            bias = stacked.pop(f"{prefix}.bias", None)
            if bias is not None:
                keep(f"{name}_b", bias.unsqueeze(1))  # (K, 1, out)

        keep("embedding", stacked.pop("embedding.weight"))  # (K, n_elements, F)
        if self.spin_states > 0:
            keep("spin_embedding", stacked.pop("spin_embedding.weight"))  # (K, spin_states + 1, F)
        self.n_layers = len(first.layers)
        for n in range(self.n_layers):
            p = f"layers.{n}"
            for part in ("phi_message", "phi_update", "phi_gate"):
                linear(f"{p}.{part}.0", f"l{n}_{part}_0")
                linear(f"{p}.{part}.2", f"l{n}_{part}_2")
            linear(f"{p}.radial_filter", f"l{n}_radial_filter")
            # the two bias-free mixes of the vector features as one matmul: (K, F, 2F)
            keep(f"l{n}_mix_w", torch.cat([stacked.pop(f"{p}.mix_work.weight"),
                                           stacked.pop(f"{p}.mix_norm.weight")], dim=1).transpose(1, 2))
        linear("head.0", "head_0")
        linear("head.2", "head_2")
        keep("references", stacked.pop("references"))  # (K, n_elements) eV
        keep("energy_scale", stacked.pop("energy_scale"))  # (K,)
        if stacked:  # a weight NewtonNet gained that this module does not know: refuse, never ignore it
            raise ValueError(f"cannot stack these models: weights {sorted(stacked)} have no stacked form")

    def _linear(self, x: torch.Tensor, name: str) -> torch.Tensor:
        """x (K, M, in) -> (K, M, out) with member k's weights."""
        bias = getattr(self, f"{name}_b", None)
        weight = getattr(self, f"{name}_w")
        return torch.bmm(x, weight) if bias is None else torch.baddbmm(bias, x, weight)

    def _mlp(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return self._linear(nn.functional.silu(self._linear(x, f"{name}_0")), f"{name}_2")

    def _vector_linear(self, v: torch.Tensor, name: str) -> torch.Tensor:
        """A bias-free Linear on the feature axis of vectors v (K, N, 3, F)."""
        K, N, three, F = v.shape
        return self._linear(v.reshape(K, N * three, F), name).reshape(K, N, three, -1)

    def _layer(self, n: int, s, v, i, j, rbf, envelope, unit):
        """:class:`NewtonNetLayer` ``n`` for all members: s (K, N, F), v (K, N, 3, F) or None."""
        K, N, F = s.shape
        a = self._mlp(s, f"l{n}_phi_message")
        m = a.index_select(1, i) * a.index_select(1, j) * self._linear(rbf, f"l{n}_radial_filter") \
            * envelope.unsqueeze(-1)
        m_s, m_f, m_v = torch.split(m, F, dim=-1)
        s = s + self.norm * _scatter_sum(m_s, i, N)
        latent_force = self.norm * _scatter_sum(m_f.unsqueeze(2) * unit.unsqueeze(-1), i, N)
        if v is None:
            v = latent_force
        else:
            v = v + latent_force + self.norm * _scatter_sum(m_v.unsqueeze(2) * v.index_select(1, j), i, N)
        mixed_work, mixed_norm = torch.split(self._vector_linear(v, f"l{n}_mix"), F, dim=-1)
        work = -(latent_force * mixed_work).sum(dim=2)
        length = torch.sqrt((mixed_norm ** 2).sum(dim=2) + 1e-8)
        s = s + self._mlp(torch.cat([s, work, length], dim=-1), f"l{n}_phi_update")
        v = v * self._mlp(s, f"l{n}_phi_gate").unsqueeze(2)
        return s, v

    def energy(self, graph: AtomicGraph, vectors: torch.Tensor) -> torch.Tensor:
        """Energy per member and graph (K, G), eV, from per-member edge vectors (K, E, 3) A: network,
        repulsion prior and per-element references (as :meth:`InteratomicPotential.forward`)."""
        r = torch.linalg.norm(vectors, dim=-1)  # (K, E)
        unit = vectors / r.unsqueeze(-1)
        rbf, envelope = self.basis(r), self.envelope(r)
        if self.exclusive_core:
            envelope = envelope * self.repulsion.network_weight(graph, r)
        s = self.embedding.index_select(1, graph.species)
        if self.spin_states > 0:
            s = s + self.spin_embedding.index_select(1, graph.spin).index_select(1, graph.batch)
        v = None
        i, j = graph.edge_index
        for n in range(self.n_layers):
            s, v = self._layer(n, s, v, i, j, rbf, envelope, unit)
        atomic = self._mlp(s, "head").squeeze(-1) * self.energy_scale.unsqueeze(-1)  # (K, N)
        energy = _scatter_sum(atomic, graph.batch, graph.n_graphs)
        if self.repulsion is not None:
            energy = energy + torch.stack([self.repulsion(graph, vec) for vec in vectors])
        references = self.references.index_select(1, graph.species)
        return energy + _scatter_sum(references, graph.batch, graph.n_graphs)

    def forward(self, graph: AtomicGraph, stress: bool = False, check: bool = True) -> Prediction:
        """Every member's energy (K, G) eV, forces (K, N, 3) eV/A and, if ``stress``, stress (K, G, 3, 3)
        eV/A^3 (zero for cells without volume). ``check``: refuse spins the members cannot take."""
        if check:
            self._check_spin(graph)
        K = self.n_members
        positions = graph.positions.detach().unsqueeze(0).repeat(K, 1, 1).requires_grad_(True)
        moved, cell = positions, graph.cell
        i, j = graph.edge_index
        sender_cell = graph.batch.index_select(0, i)
        shifts = graph.shifts.to(positions.dtype)
        if stress:
            strain = torch.zeros((K,) + tuple(graph.cell.shape), dtype=positions.dtype, device=positions.device,
                                 requires_grad=True)
            sym = 0.5 * (strain + strain.transpose(-1, -2))
            moved = positions + torch.einsum("kna,knab->knb", positions, sym.index_select(1, graph.batch))
            cell = graph.cell + torch.matmul(graph.cell, sym)  # (K, G, 3, 3)
            offsets = torch.einsum("ea,keab->keb", shifts, cell.index_select(1, sender_cell))
        else:
            offsets = torch.einsum("ea,eab->eb", shifts, graph.cell.index_select(0, sender_cell))
        vectors = moved.index_select(1, j) - moved.index_select(1, i) + offsets
        energy = self.energy(graph, vectors)
        inputs = [positions] + ([strain] if stress else [])
        grads = torch.autograd.grad(energy.sum(), inputs)
        out = Prediction(energy=energy.detach(), forces=-grads[0])
        if stress:
            volume = cell_volume(graph.cell).view(1, -1, 1, 1)
            periodic = volume > 0
            out.stress = grads[1] / torch.where(periodic, volume, torch.ones_like(volume)) * periodic
        return out


def _scatter_sum(values: torch.Tensor, index: torch.Tensor, n: int) -> torch.Tensor:
    """Sum entries of ``values`` (K, M, ...) into (K, n, ...) by ``index`` (M,) along the second axis."""
    out = torch.zeros((values.shape[0], n) + values.shape[2:], dtype=values.dtype, device=values.device)
    return out.index_add_(1, index, values)
