"""MACE (Batatia et al., NeurIPS 2022) as an ffpt architecture, built from mace-torch's own modules.

mace-torch is an optional extra: ``pip install 'ffpt[mace]'``. This module imports it only when a
model is built, so ffpt works without it and asking for ``architecture: mace`` then fails with an
:class:`ImportError` that says how to install it.

ffpt hyper-parameters map onto MACE's as follows (MACE's own defaults in brackets):

=====================  ==========================================================================
ffpt                   MACE
=====================  ==========================================================================
cutoff (A)             r_max [5.0]
n_features             num_channels: hidden_irreps = n_features x (0e + 1o + ... up to max_L)
n_layers               num_interactions [2]
n_basis                num_bessel [8]
avg_num_neighbors      avg_num_neighbors (message normalisation)
options.max_ell        max_ell of the edge spherical harmonics [3]
options.max_L          highest l of the hidden node features [1]
options.correlation    body order of the symmetric contraction minus one [3]
options.radial_mlp     hidden widths of the radial MLP [[64, 64, 64]]
options.mlp_irreps     hidden scalars of the non-linear readout [16]
options.num_polynomial_cutoff   order of the cutoff envelope [5]
options.residual_first  first interaction with a residual (self-connection) path: mace_run_train's
                       ``--model=MACE`` replaces its ``--interaction_first`` default by the plain
                       RealAgnosticInteractionBlock, so [false]; model files written before this
                       option existed have the residual block and load with true
reduced_cg             use_reduced_cg: cuequivariance's reduced coupling coefficients in the symmetric
                       contraction (only where cuequivariance is installed); MACE's class default, so
                       [true]; a constructor argument, not a config option: mace_run_train's default is
                       false, which the converter keeps (:mod:`ffpt.models.mace_convert`)
=====================  ==========================================================================

Only atomic energies come from MACE (interactions, symmetric contractions, readouts summed over
layers). Per-element shift and scale are ffpt's ``references`` and ``energy_scale``; forces and
stress come from autograd through ffpt's edge vectors in :class:`InteratomicPotential`.
"""

from __future__ import annotations

import contextlib
import copy
import warnings

import torch
from torch import nn

from ffpt.models.graph import AtomicGraph
from ffpt.models.potential import InteratomicPotential

INSTALL_HINT = "pip install 'ffpt[mace]'  (or: pip install mace-torch==0.3.16 torch==2.13.0)"


def import_mace():
    """The mace-torch modules MACE needs, or an ImportError that says how to install them."""
    try:
        from importlib.metadata import version

        if tuple(int(x) for x in version("e3nn").split(".")[:2]) < (0, 5):
            # e3nn 0.4.x (pinned by mace-torch) loads its Wigner constants with a default
            # torch.load, which torch >= 2.6 restricts to weights; the file also holds slices.
            torch.serialization.add_safe_globals([slice])
        from e3nn import o3
        from mace.modules import MACE, RealAgnosticResidualInteractionBlock
    except ImportError as exc:
        raise ImportError(f"architecture 'mace' needs mace-torch, which is not installed: {INSTALL_HINT}") from exc
    return o3, MACE, RealAgnosticResidualInteractionBlock


class MACEReadouts(nn.Module):
    """The per-layer MACE readouts: the output head that fine-tuning may re-initialise."""

    def __init__(self, readouts: nn.ModuleList):
        super().__init__()
        self.readouts = readouts

    def reset_parameters(self) -> None:
        """Redraw the e3nn weights as at construction (standard normal; e3nn normalises paths)."""
        with torch.no_grad():
            for p in self.readouts.parameters():
                p.normal_()


class PrecontractedContraction(nn.Module):
    """One of MACE's symmetric contractions (node features x (N, C, L) of one output irrep, one-hot
    elements y (N, E)) with its per-element weights contracted into the coupling tensors up front, for
    inference: UW_nu[e, c, ..., i] = sum_k U_nu[..., i, k] W_nu[e, k, c] (fixed weights only).

    MACE sums B_nu = sum_k U_nu W_nu[element] x^nu per node; contracting the weights with the features
    first costs K (the number of coupling paths, 23 to 51 at correlation 3 and max_ell 3) times more
    per node than contracting the fixed products UW_nu, at E (the number of elements) times the memory.
    The highest order is one batched matrix product over channels: (C, R, E*L) @ (C, E*L, N), with
    y (x) x as the right factor."""

    def __init__(self, contraction: nn.Module):
        super().__init__()
        self.correlation = int(contraction.correlation)
        weights = {self.correlation: contraction.weights_max}
        weights.update({self.correlation - 1 - k: w for k, w in enumerate(contraction.weights)})
        for nu, w in weights.items():
            uw = torch.einsum("...k,ekc->ec...", contraction.U_tensors(nu), w).detach()  # (E, C, [eq], L x nu)
            n_elements, n_channels, n_ell = uw.shape[0], uw.shape[1], uw.shape[-1]
            if nu == self.correlation:  # (C, R, E*L), R = [eq] + L x (nu - 1)
                uw = uw.reshape(n_elements, n_channels, -1, n_ell).permute(1, 2, 0, 3).flatten(2)
            else:  # (E, C, R * L)
                uw = uw.reshape(n_elements, n_channels, -1)
            self.register_buffer(f"uw_{nu}", uw.contiguous(), persistent=False)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        n_nodes, n_channels, n_ell = x.shape
        yx = (y[:, None, :, None] * x[:, :, None, :]).reshape(n_nodes, n_channels, -1)  # (N, C, E*L)
        out = torch.einsum("crk,bck->bcr", getattr(self, f"uw_{self.correlation}"), yx)
        for nu in range(self.correlation - 1, 0, -1):
            coupled = torch.einsum("be,ecr->bcr", y, getattr(self, f"uw_{nu}")) + out
            out = torch.einsum("bcri,bci->bcr", coupled.unflatten(2, (-1, n_ell)), x)
        return out.reshape(n_nodes, -1)


class MACEPotential(InteratomicPotential):
    """MACE atomic energies on ffpt graphs; references/scale, forces and stress from the base class."""

    architecture = "mace"
    head_name = "head"

    def __init__(
        self,
        elements: list[int],
        cutoff: float = 5.0,
        n_features: int = 64,
        n_layers: int = 2,
        n_basis: int = 8,
        avg_num_neighbors: float = 10.0,
        max_ell: int = 3,
        max_L: int = 1,
        correlation: int = 3,
        radial_mlp: list[int] | tuple[int, ...] = (64, 64, 64),
        mlp_irreps: int = 16,
        num_polynomial_cutoff: int = 5,
        residual_first: bool = False,
        reduced_cg: bool = True,
    ):
        super().__init__(elements, cutoff)
        o3, MACE, Interaction = import_mace()
        from mace.modules import RealAgnosticInteractionBlock
        if n_layers < 1 or n_features < 1 or not 0 <= max_L <= max_ell:
            raise ValueError(f"MACE needs n_layers >= 1, n_features >= 1 and 0 <= max_L <= max_ell (got "
                             f"n_layers={n_layers}, n_features={n_features}, max_L={max_L}, max_ell={max_ell})")
        self._hparams = dict(
            elements=self.elements, cutoff=self.cutoff, n_features=int(n_features), n_layers=int(n_layers),
            n_basis=int(n_basis), avg_num_neighbors=float(avg_num_neighbors), max_ell=int(max_ell),
            max_L=int(max_L), correlation=int(correlation), radial_mlp=[int(w) for w in radial_mlp],
            mlp_irreps=int(mlp_irreps), num_polynomial_cutoff=int(num_polynomial_cutoff),
            residual_first=bool(residual_first), reduced_cg=bool(reduced_cg),
        )
        hidden = o3.Irreps("+".join(f"{n_features}x{l}{'e' if l % 2 == 0 else 'o'}" for l in range(max_L + 1)))
        with warnings.catch_warnings():  # TorchScript chatter from e3nn's code generation
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            mace = MACE(
                r_max=self.cutoff, num_bessel=n_basis, num_polynomial_cutoff=num_polynomial_cutoff,
                max_ell=max_ell, interaction_cls=Interaction,
                interaction_cls_first=Interaction if residual_first else RealAgnosticInteractionBlock,
                num_interactions=n_layers, num_elements=len(self.elements), hidden_irreps=hidden,
                MLP_irreps=o3.Irreps(f"{mlp_irreps}x0e"), atomic_energies=torch.zeros(len(self.elements)).numpy(),
                avg_num_neighbors=float(avg_num_neighbors), atomic_numbers=self.elements,
                correlation=correlation, gate=torch.nn.functional.silu, radial_MLP=list(radial_mlp),
                use_reduced_cg=bool(reduced_cg),
            )
        # keep MACE's building blocks, not its forward (which recomputes edges, E0 and forces itself)
        self.embedding = mace.node_embedding
        self.radial = mace.radial_embedding
        self.spherical_harmonics = mace.spherical_harmonics
        self.interactions = mace.interactions
        self.products = mace.products
        self.head = MACEReadouts(mace.readouts)
        self.register_buffer("atomic_numbers", torch.tensor(self.elements, dtype=torch.long), persistent=False)

    def hparams(self) -> dict:
        return dict(self._hparams)

    @classmethod
    def saved_hparams(cls, hparams: dict) -> dict:
        """Hyper-parameters of a model file: files from before ``residual_first`` have the residual block."""
        return {"residual_first": True, **hparams}

    # the submodules built by mace-torch (everything else, e.g. a repulsion prior, is ffpt's own)
    MACE_PARTS = ("embedding", "radial", "spherical_harmonics", "interactions", "products", "head")

    @contextlib.contextmanager
    def traceable(self):
        """This model as plain Python modules, for ``make_fx(tracing_mode="symbolic")`` (export).

        e3nn compiles its code-generated linears and tensor products with TorchScript, and its spherical
        harmonics are a TorchScript function; the TorchScript interpreter turns symbolic atom and edge
        counts into the example's numbers, so a traced graph would only take the example's sizes. Yields
        a copy whose MACE parts are rebuilt without TorchScript (same weights and dtype) and whose
        symmetric contractions are :class:`PrecontractedContraction` (fixed weights: inference only);
        while the context is open, e3nn's spherical harmonics run their Python original."""
        import e3nn
        from e3nn.o3 import _spherical_harmonics as sh

        defaults = e3nn.get_optimization_defaults()
        e3nn.set_optimization_defaults(jit_script_fx=False)
        try:
            plain = MACEPotential(**self._hparams)
        finally:
            e3nn.set_optimization_defaults(**defaults)
        twin = copy.deepcopy(self)
        for name in self.MACE_PARTS:
            setattr(twin, name, getattr(plain, name))
        reference = next(self.parameters())
        twin.to(dtype=reference.dtype, device=reference.device).load_state_dict(self.state_dict())
        twin.train(self.training)
        for product in twin.products:
            contractions = product.symmetric_contractions.contractions
            for k, contraction in enumerate(contractions):
                contractions[k] = PrecontractedContraction(contraction)
        scripted = sh._spherical_harmonics
        sh._spherical_harmonics = getattr(scripted, "_torchdynamo_inline", scripted)  # torch.jit.script keeps it
        try:
            yield twin
        finally:
            sh._spherical_harmonics = scripted

    def atomic_energies(self, graph: AtomicGraph, edge_vectors: torch.Tensor) -> torch.Tensor:
        # MACE convention: edge_index = (sender, receiver), vector = r_receiver - r_sender.
        # ffpt edges are (receiver i, sender j) with r_ij = r_j - r_i, hence the flip and the sign.
        edge_index = graph.edge_index.flip(0)
        vectors = -edge_vectors
        lengths = torch.linalg.norm(vectors, dim=-1, keepdim=True)
        node_attrs = nn.functional.one_hot(graph.species, len(self.elements)).to(edge_vectors.dtype)
        heads = torch.zeros_like(graph.species)
        node_feats = self.embedding(node_attrs)
        edge_attrs = self.spherical_harmonics(vectors)
        edge_feats, cutoff = self.radial(lengths, node_attrs, edge_index, self.atomic_numbers)
        features = []
        for k, (interaction, product) in enumerate(zip(self.interactions, self.products)):
            node_feats, sc = interaction(
                node_attrs=node_attrs, node_feats=node_feats, edge_attrs=edge_attrs, edge_feats=edge_feats,
                edge_index=edge_index, cutoff=cutoff, first_layer=k == 0,
            )
            node_feats = product(node_feats=node_feats, sc=sc, node_attrs=node_attrs)
            features.append(node_feats)
        return sum(readout(x, heads)[:, 0] for readout, x in zip(self.head.readouts, features))
