"""A ``mace_run_train`` model file (``NAME.model``: ``mace.modules.models.MACE`` or ``ScaleShiftMACE``) as an
ffpt :class:`~ffpt.models.mace.MACEPotential`, so it exports like any ffpt model (``ffpt export NAME.model``).

The hyper-parameters are read off the mace-torch model, its weights and buffers copied unchanged, and its
energy pieces mapped onto ffpt's (:class:`~ffpt.models.potential.InteratomicPotential`)::

    MACE:            E = sum_i [ E0(Z_i) + e_i ]                  -> references = E0, energy_scale = 1
    ScaleShiftMACE:  E = sum_i [ E0(Z_i) + scale * e_i + shift ]  -> references = E0 + shift, energy_scale = scale

(eV; e_i the summed readouts). ffpt's repulsion prior stays off. What ffpt's MACE cannot reproduce exactly
(other model classes, several heads, MACE's pair repulsion, other radial bases or interaction blocks, ...)
is a :class:`UserError` naming the file; a converted model is checked against the mace-torch model's own
forward on a probe frame in float64 before it is returned. Loading the file runs its pickle.
"""

from __future__ import annotations

import copy
import os
import warnings
from contextlib import contextmanager

import torch

from ffpt.errors import UserError
from ffpt.models.mace import INSTALL_HINT, MACEPotential, import_mace
from ffpt.models.mace_cli_model import check_mace_cli_model

AGREEMENT = 1e-9  # relative agreement (float64) asked of the converted model against the mace-torch one


class ConversionError(UserError):
    """A ``mace_run_train`` model that ffpt's MACE cannot reproduce exactly; names the file."""


def load_mace_cli_model(path: str | os.PathLike) -> torch.nn.Module:
    """The mace-torch model of the ``mace_run_train`` file ``path`` (runs its pickle), on the CPU."""
    check_mace_cli_model(path)
    try:
        import_mace()
    except ImportError:
        raise UserError(f"{path}: converting a mace_run_train model needs mace-torch: {INSTALL_HINT}") from None
    with warnings.catch_warnings():  # TorchScript chatter of e3nn's code generation
        warnings.simplefilter("ignore")
        return torch.load(path, map_location="cpu", weights_only=False).eval()


@contextmanager
def _default_dtype(dtype: torch.dtype):
    """torch's default float type set to ``dtype`` inside the block (e3nn's constants and MACE's data are
    made in it), the previous one restored after."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def _one(values: list, what: str):
    """The value every layer shares, or a ValueError naming ``what``."""
    if any(v != values[0] for v in values[1:]):
        raise ValueError(f"{what} differs between layers ({values})")
    return values[0]


def mace_hparams(mace: torch.nn.Module) -> dict:
    """:class:`MACEPotential` constructor arguments of a mace-torch MACE model; a ValueError saying what
    ffpt's MACE lacks (exact reproduction only)."""
    from e3nn import o3
    from mace.modules import blocks, models, radial

    if type(mace) not in (models.MACE, models.ScaleShiftMACE):
        raise ValueError(f"model class {type(mace).__name__} (only MACE and ScaleShiftMACE convert)")
    heads = list(getattr(mace, "heads", ["Default"]))
    if len(heads) != 1:
        raise ValueError(f"{len(heads)} heads {heads} (ffpt's MACE has one)")
    unsupported = {
        "pair repulsion (--pair_repulsion)": hasattr(mace, "pair_repulsion"),
        "extra embeddings (--embedding_specs)": hasattr(mace, "joint_embedding"),
        "SO(3) spherical harmonics (--use_so3)": getattr(mace, "use_so3", False),
        "an agnostic product (--use_agnostic_product)": getattr(mace, "use_agnostic_product", False),
        "the last readout only (--use_last_readout_only)": getattr(mace, "use_last_readout_only", False),
        "edge irreps (--edge_irreps)": getattr(mace, "edge_irreps", None) is not None,
        "no cutoff on the radial basis (--apply_cutoff False)": not getattr(mace, "apply_cutoff", True),
        "a distance transform (--distance_transform)": hasattr(mace.radial_embedding, "distance_transform"),
        f"radial basis {type(mace.radial_embedding.bessel_fn).__name__} (--radial_type)":
            type(mace.radial_embedding.bessel_fn) is not radial.BesselBasis,
    }
    found = [name for name, present in unsupported.items() if present]
    if found:
        raise ValueError(", ".join(found))
    interactions, readouts = list(mace.interactions), list(mace.readouts)
    first = type(interactions[0])
    if first not in (blocks.RealAgnosticInteractionBlock, blocks.RealAgnosticResidualInteractionBlock):
        raise ValueError(f"first interaction {first.__name__}")
    others = {type(block).__name__ for block in interactions[1:]} - {"RealAgnosticResidualInteractionBlock"}
    if others:
        raise ValueError(f"interaction {', '.join(sorted(others))} (ffpt's MACE has RealAgnosticResidualInteractionBlock)")
    kinds = [type(r) for r in readouts]  # one layer: its linear readout only (no MLP)
    expected = [blocks.LinearReadoutBlock] * (len(interactions) - 1) + [blocks.NonLinearReadoutBlock]
    if kinds != (expected if len(interactions) > 1 else [blocks.LinearReadoutBlock]):
        raise ValueError(f"readouts {[k.__name__ for k in kinds]}")
    mlp = o3.Irreps("16x0e")  # MACEPotential's default, unused by one layer
    if len(interactions) > 1:
        gates = [getattr(act, "f", act) for act in readouts[-1].non_linearity.acts]
        if gates != [torch.nn.functional.silu]:
            raise ValueError(f"readout gate {gates} (ffpt's MACE has silu)")
        mlp = o3.Irreps(readouts[-1].hidden_irreps)
        if len(mlp) != 1 or mlp[0].ir != o3.Irrep("0e"):
            raise ValueError(f"readout MLP irreps {mlp} (ffpt's MACE has scalars: Nx0e)")
    sh = mace.spherical_harmonics
    if not sh.normalize or sh.normalization != "component":
        raise ValueError("spherical harmonics normalisation")
    n_features = o3.Irreps(interactions[0].node_feats_irreps).count(o3.Irrep("0e"))
    max_L = 0
    if len(interactions) > 1:
        hidden = o3.Irreps(interactions[1].node_feats_irreps)
        max_L = hidden.lmax
        expected = o3.Irreps("+".join(f"{n_features}x{l}{'e' if l % 2 == 0 else 'o'}" for l in range(max_L + 1)))
        if hidden != expected:
            raise ValueError(f"hidden irreps {hidden} (ffpt's MACE has {expected}: one channel count, parity (-1)^l)")
    return dict(
        elements=[int(z) for z in mace.atomic_numbers],
        cutoff=float(mace.r_max),
        n_features=n_features,
        n_layers=len(interactions),
        n_basis=int(mace.radial_embedding.out_dim),
        avg_num_neighbors=float(_one([float(b.avg_num_neighbors) for b in interactions], "avg_num_neighbors")),
        max_ell=int(sh.irreps_out.lmax),
        max_L=int(max_L),
        correlation=int(_one([int(c.correlation) for p in mace.products
                              for c in p.symmetric_contractions.contractions], "correlation")),
        radial_mlp=[int(w) for w in _one([list(b.radial_MLP) for b in interactions], "radial MLP")],
        mlp_irreps=int(mlp.num_irreps),
        num_polynomial_cutoff=int(mace.radial_embedding.cutoff_fn.p),
        residual_first=first is blocks.RealAgnosticResidualInteractionBlock,
        reduced_cg=bool(getattr(mace, "use_reduced_cg", False)),
    )


# mace-torch module prefix -> MACEPotential's
PARTS = {"node_embedding.": "embedding.", "radial_embedding.": "radial.", "spherical_harmonics.": "spherical_harmonics.",
         "interactions.": "interactions.", "products.": "products.", "readouts.": "head.readouts."}


def convert_mace(mace: torch.nn.Module) -> MACEPotential:
    """The ffpt MACE of a mace-torch MACE or ScaleShiftMACE (same dtype, weights, buffers and energy);
    a ValueError saying what cannot be mapped exactly."""
    dtype = next(mace.parameters()).dtype
    with _default_dtype(dtype), warnings.catch_warnings():  # e3nn's constants as mace-torch built them
        warnings.simplefilter("ignore")
        model = MACEPotential(**mace_hparams(mace)).to(dtype)
    source = mace.state_dict()
    state = model.state_dict()
    own = {k for k in state if k not in ("references", "energy_scale")}
    mapped = {new + k[len(old):]: v for k, v in source.items() for old, new in PARTS.items() if k.startswith(old)}
    if set(mapped) != own or any(mapped[k].shape != state[k].shape for k in own):
        differ = sorted(set(mapped) ^ own) or [k for k in own if mapped[k].shape != state[k].shape]
        raise ValueError(f"weights do not map onto ffpt's MACE ({', '.join(differ[:3])})")
    e0 = torch.atleast_2d(mace.atomic_energies_fn.atomic_energies)[0]
    scale, shift = torch.ones(()), torch.zeros(())
    if hasattr(mace, "scale_shift"):
        scale = torch.atleast_1d(mace.scale_shift.scale)[0]
        shift = torch.atleast_1d(mace.scale_shift.shift)[0]
    mapped["references"] = (e0.double() + shift.double()).to(dtype)
    mapped["energy_scale"] = scale.to(dtype)
    model.load_state_dict(mapped)
    assert model.repulsion is None  # no ffpt prior on a converted model
    return model.eval()


def mace_energy_forces(mace: torch.nn.Module, atoms) -> tuple[float, torch.Tensor]:
    """Energy (eV) and forces (N, 3) eV/A of ``atoms`` by the mace-torch model's own forward (its dtype)."""
    from mace.data import AtomicData, config_from_atoms
    from mace.tools import AtomicNumberTable, torch_geometric

    with _default_dtype(next(mace.parameters()).dtype):  # MACE's data in the model's float type
        table = AtomicNumberTable([int(z) for z in mace.atomic_numbers])
        data = AtomicData.from_config(config_from_atoms(atoms), z_table=table, cutoff=float(mace.r_max))
    batch = next(iter(torch_geometric.dataloader.DataLoader([data], batch_size=1)))
    out = mace(batch.to_dict(), training=False, compute_force=True)
    return float(out["energy"][0]), out["forces"].detach()


def check_conversion(mace: torch.nn.Module, model: MACEPotential) -> str | None:
    """None if ``model`` reproduces ``mace`` (both in float64) on a probe frame, else what differs: forces to
    ``AGREEMENT``, the energy also to the rounding of E0 + shift into a float32 model's references."""
    from ffpt.models.export import probe_frames
    from ffpt.models.graph import NeighborListBuilder, graph_from_atoms

    mace64, model64 = copy.deepcopy(mace).double(), copy.deepcopy(model).double()
    atoms = probe_frames(model)[0]
    energy, forces = mace_energy_forces(mace64, atoms)
    pred = model64(graph_from_atoms(atoms, model.elements, NeighborListBuilder(model.cutoff), dtype=torch.float64))
    e_err = abs(float(pred.energy[0]) - energy)
    f_err = float((pred.forces - forces).abs().max())
    # references = E0 + shift stored in the model's dtype: each rounded by up to one ulp (float32: ~1e-4 eV)
    rounding = len(atoms) * torch.finfo(model.references.dtype).eps * float(model.references.abs().max())
    if e_err > AGREEMENT * max(1.0, abs(energy)) + rounding or f_err > AGREEMENT * max(1.0, float(forces.abs().max())):
        return f"energy differs by {e_err:.3g} eV, forces by {f_err:.3g} eV/A"
    return None


def convert_mace_file(path: str | os.PathLike) -> MACEPotential:
    """The ffpt MACE of the ``mace_run_train`` file ``path``, checked against the file's own model, with
    provenance naming the file; a :class:`ConversionError` naming it when no exact conversion exists."""
    mace = load_mace_cli_model(path)
    try:
        model = convert_mace(mace)
    except ValueError as exc:
        raise ConversionError(f"{path}: cannot convert this mace_run_train model to ffpt's MACE exactly: {exc}") from None
    problem = check_conversion(mace, model)
    if problem:
        raise ConversionError(f"{path}: the converted model does not reproduce the mace_run_train model ({problem})")
    model.provenance = {"stage": "converted", "converted_from": str(path), "mace_class": type(mace).__name__}
    return model
