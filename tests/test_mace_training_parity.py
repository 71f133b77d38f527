"""ffpt's MACE training step against mace-torch's own (issue 27, item 2): from the same weights and the
same batch, ffpt's energies, forces, loss, gradients and optimizer steps equal those of ``mace_run_train``'s
pieces (ScaleShiftMACE, WeightedEnergyForcesLoss, get_params_options + get_optimizer), float64.

What is left to differ between the two trainers is then only the random initial weights and the order
of the batches (both seeded, by different generators)."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch
from conftest import emt_frames
from mace import data as mace_data
from mace import modules as mace_modules
from mace import tools as mace_tools
from mace.tools import arg_parser as mace_arg_parser
from mace.tools import scripts_utils as mace_scripts
from mace.tools.torch_geometric import Batch

from ffpt import keys
from ffpt.models import load_model, save_model
from ffpt.models.graph import collate
from ffpt.models.mace import MACEPotential, import_mace
from ffpt.models.references import element_counts, fit_references, force_rms, frame_energies
from ffpt.training.dataset import GraphDataset
from ffpt.training.module import PotentialModule, loss_terms


o3 = import_mace()[0]  # e3nn, loaded as ffpt loads it
ELEMENTS = [1, 6, 8]
HPARAMS = dict(cutoff=4.0, n_features=8, n_layers=2, n_basis=6, avg_num_neighbors=5.0, max_ell=2,
               correlation=2, radial_mlp=(16, 16), mlp_irreps=4)
# MACE's module names for ffpt's
PARTS = {"embedding": "node_embedding", "radial": "radial_embedding", "interactions": "interactions",
         "products": "products", "head.readouts": "readouts"}


@pytest.fixture(scope="module")
def frames():
    return emt_frames(names=("CH3OH", "H2O", "CH4"), n=6, seed=3)


@contextlib.contextmanager
def float64_default():
    """Torch's default dtype float64 while MACE builds its buffers and data (mace_run_train sets it so)."""
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(default)


def twins(frames):
    """ffpt's MACEPotential and mace-torch's ScaleShiftMACE with the same weights, references and scale."""
    torch.manual_seed(0)
    ours = MACEPotential(ELEMENTS, **HPARAMS).double()
    refs, _ = fit_references(element_counts(frames, ELEMENTS), frame_energies(frames))
    ours.references.copy_(torch.as_tensor(refs))
    ours.energy_scale.fill_(force_rms(frames))
    with float64_default():
        theirs = mace_modules.ScaleShiftMACE(
            r_max=HPARAMS["cutoff"], num_bessel=HPARAMS["n_basis"], num_polynomial_cutoff=5,
            max_ell=HPARAMS["max_ell"], interaction_cls=mace_modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
            # mace_run_train --model=MACE builds its first interaction without the residual path
            interaction_cls_first=mace_modules.interaction_classes["RealAgnosticInteractionBlock"],
            num_interactions=HPARAMS["n_layers"], num_elements=len(ELEMENTS),
            hidden_irreps=o3.Irreps(f"{HPARAMS['n_features']}x0e + {HPARAMS['n_features']}x1o"),
            MLP_irreps=o3.Irreps(f"{HPARAMS['mlp_irreps']}x0e"), atomic_energies=refs,
            avg_num_neighbors=HPARAMS["avg_num_neighbors"], atomic_numbers=ELEMENTS, correlation=HPARAMS["correlation"],
            gate=torch.nn.functional.silu, radial_MLP=list(HPARAMS["radial_mlp"]),
            atomic_inter_scale=force_rms(frames), atomic_inter_shift=0.0,
        ).double()
    for ffpt_name, mace_name in PARTS.items():
        source = ours.get_submodule(ffpt_name).state_dict()
        theirs.get_submodule(mace_name).load_state_dict(source)
    return ours, theirs


def mace_batch(frames):
    z_table = mace_tools.AtomicNumberTable(ELEMENTS)
    keyspec = mace_data.KeySpecification(info_keys={"energy": keys.ENERGY}, arrays_keys={"forces": keys.FORCES})
    configs = [mace_data.config_from_atoms(a, key_specification=keyspec) for a in frames]
    with float64_default():
        data = [mace_data.AtomicData.from_config(c, z_table=z_table, cutoff=HPARAMS["cutoff"]) for c in configs]
    return Batch.from_data_list(data)


def ffpt_batch(frames):
    return collate(GraphDataset(frames, ELEMENTS, HPARAMS["cutoff"], torch.float64).graphs)


def mace_optimizer(theirs):
    """mace_run_train's optimizer for ``theirs``, from its own argument defaults (Adam, AMSGrad, lr 0.01,
    weight decay 5e-7 on the interaction linears and the products)."""
    args = mace_arg_parser.build_default_arg_parser().parse_args(["--name", "parity", "--train_file", "unused.xyz"])
    return mace_scripts.get_optimizer(args, mace_scripts.get_params_options(args, theirs))


def renamed(name: str) -> str:
    """MACE's parameter name for one of ffpt's ``model.*`` parameters."""
    for ffpt_name, mace_name in PARTS.items():
        if name.startswith(ffpt_name + "."):
            return mace_name + name[len(ffpt_name):]
    raise KeyError(name)


def test_same_energies_forces_loss_and_gradients(frames):
    ours, theirs = twins(frames)
    batch = ffpt_batch(frames)
    terms = loss_terms(ours, batch, training=True)
    loss = 1.0 * terms["energy_loss"] + 100.0 * terms["forces_loss"]
    loss.backward()
    data = mace_batch(frames)
    out = theirs(data, training=True, compute_force=True)
    np.testing.assert_allclose(ours(batch, forces=True).energy.detach(), out["energy"].detach(), rtol=1e-12)
    their_loss = mace_modules.WeightedEnergyForcesLoss(energy_weight=1.0, forces_weight=100.0)(ref=data, pred=out)
    their_loss.backward()
    assert float(loss) == pytest.approx(float(their_loss), rel=1e-10)
    theirs_named = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad, theirs_named[renamed(name)].grad, rtol=1e-8, atol=1e-14, err_msg=name)


def test_same_optimizer_groups_and_steps(frames):
    """mace_run_train's optimizer (its defaults) and ffpt's with the recipe's options (adam, amsgrad, lr
    0.01, weight decay 5e-7 on MACE's groups), gradient-norm clip 10: the same weights after three steps.
    (The EMA is not compared: Lightning's first EMA update copies the weights where torch_ema keeps 2/11
    of the initial ones, a share that decays below 1e-9 within 100 steps; later decays are the same.)"""
    ours, theirs = twins(frames)
    module = PotentialModule(ours, lr=0.01, weight_decay=5e-7, energy_weight=1.0, forces_weight=100.0,
                             optimizer="adam", amsgrad=True, weight_decay_groups="mace")
    ffpt_opt = module.configure_optimizers()["optimizer"]
    mace_opt = mace_optimizer(theirs)
    assert isinstance(ffpt_opt, type(mace_opt)) and ffpt_opt.defaults["amsgrad"] and mace_opt.defaults["amsgrad"]
    ffpt_names = {id(p): renamed(n) for n, p in ours.named_parameters()}
    mace_names = {id(p): n for n, p in theirs.named_parameters()}

    def decayed(optimizer, names):
        return {(names[id(p)], g["lr"], g["weight_decay"]) for g in optimizer.param_groups for p in g["params"]}

    assert decayed(ffpt_opt, ffpt_names) == decayed(mace_opt, mace_names)
    for step in range(3):
        part = frames[2 * step: 2 * step + 2]
        ffpt_opt.zero_grad()
        terms = loss_terms(ours, ffpt_batch(part), training=True)
        (terms["energy_loss"] + 100.0 * terms["forces_loss"]).backward()
        torch.nn.utils.clip_grad_norm_(ours.parameters(), 10.0)
        ffpt_opt.step()
        mace_opt.zero_grad()
        data = mace_batch(part)
        mace_modules.WeightedEnergyForcesLoss(1.0, 100.0)(ref=data, pred=theirs(data, training=True)).backward()
        torch.nn.utils.clip_grad_norm_(theirs.parameters(), 10.0)
        mace_opt.step()
    theirs_named = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.detach(), theirs_named[renamed(name)].detach(), rtol=1e-7, atol=1e-12, err_msg=name)


def test_a_file_from_before_residual_first_loads_with_the_residual_block(tmp_path, frames):
    """Model files written before the ``residual_first`` option (default now mace_run_train's plain first
    block) hold a residual first interaction: they load as such, with the same energies."""
    torch.manual_seed(1)
    old = MACEPotential(ELEMENTS, **HPARAMS, residual_first=True).double()
    assert "interactions.0.skip_tp.weight" in old.state_dict()
    path = save_model(old, tmp_path / "old.pt")
    payload = torch.load(path, weights_only=False)
    del payload["hparams"]["residual_first"]
    torch.save(payload, path)
    loaded = load_model(path)
    batch = ffpt_batch(frames)
    np.testing.assert_allclose(loaded(batch).energy.detach(), old(batch).energy.detach(), rtol=1e-12)
    assert not MACEPotential(ELEMENTS, **HPARAMS).hparams()["residual_first"]
