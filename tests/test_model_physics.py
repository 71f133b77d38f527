"""Physics of the NewtonNet-class model: gradients, symmetries, periodic images, stress."""

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import molecule
from scipy.spatial.transform import Rotation

from ffpt.models import NewtonNet, collate, graph_from_atoms, NeighborListBuilder
from ffpt.models.calculator import MLIPCalculator

from helpers_physics import energy_forces, finite_difference_forces, finite_difference_stress


def random_model(elements=(1, 6, 8), cutoff=4.0, seed=0):
    torch.manual_seed(seed)
    model = NewtonNet(elements=list(elements), cutoff=cutoff, n_features=16, n_layers=2, n_basis=8).double()
    # non-trivial references and scale so they are exercised too
    model.references.copy_(torch.tensor([-13.6, -1029.0, -2041.0][: len(elements)], dtype=torch.float64))
    model.energy_scale.fill_(0.7)
    return model


def calc_for(model):
    return MLIPCalculator(model)


def test_forces_are_minus_energy_gradient(ethanol):
    calc = calc_for(random_model())
    _, forces = energy_forces(calc, ethanol)
    fd = finite_difference_forces(calc, ethanol, h=1e-5)
    assert np.abs(forces).max() > 1e-3  # not trivially zero
    rel = np.abs(forces - fd).max() / np.abs(forces).max()
    assert rel < 1e-5, rel


def test_rotation_translation_permutation(ethanol):
    calc = calc_for(random_model())
    e0, f0 = energy_forces(calc, ethanol)
    R = Rotation.random(random_state=3).as_matrix()
    moved = ethanol.copy()
    moved.positions = ethanol.positions @ R.T + np.array([1.3, -2.2, 0.7])
    e1, f1 = energy_forces(calc, moved)
    assert abs(e1 - e0) < 1e-9 * max(1.0, abs(e0))
    np.testing.assert_allclose(f1, f0 @ R.T, atol=1e-9)
    perm = np.random.default_rng(0).permutation(len(ethanol))
    e2, f2 = energy_forces(calc, ethanol[perm])
    assert abs(e2 - e0) < 1e-9 * max(1.0, abs(e0))
    np.testing.assert_allclose(f2, f0[perm], atol=1e-9)


def test_mirror_image_has_same_energy(ethanol):
    """E(3): reflection changes nothing for a model built on distances and dot products."""
    calc = calc_for(random_model())
    mirrored = ethanol.copy()
    mirrored.positions[:, 0] *= -1
    assert energy_forces(calc, mirrored)[0] == pytest.approx(energy_forces(calc, ethanol)[0], abs=1e-9)


def test_water_across_cell_boundary_equals_unwrapped():
    model = random_model(elements=(1, 8))
    calc = calc_for(model)
    water = molecule("H2O")
    water.cell = np.diag([12.0, 12.0, 12.0])
    water.pbc = True
    water.positions += 6.0
    e_in, f_in = energy_forces(calc, water)
    shifted = water.copy()
    shifted.positions += np.array([0.0, 5.9, 0.0])  # O near the y face: one H across it after wrap
    shifted.wrap()
    assert shifted.positions[:, 1].max() - shifted.positions[:, 1].min() > 6.0  # really split
    e_wrap, f_wrap = energy_forces(calc, shifted)
    assert e_wrap == pytest.approx(e_in, abs=1e-9)
    np.testing.assert_allclose(f_wrap, f_in, atol=1e-9)


def test_small_periodic_cell_sees_its_images():
    """A cell smaller than the cutoff: the model must include images (energy changes with cell)."""
    calc = calc_for(random_model(elements=(1, 8), cutoff=4.0))
    water = molecule("H2O")
    water.center(vacuum=0.0)
    big = water.copy()
    big.cell, big.pbc = np.diag([20.0] * 3), True
    small = water.copy()
    small.cell, small.pbc = np.diag([3.0] * 3), True
    e_big, e_small = energy_forces(calc, big)[0], energy_forces(calc, small)[0]
    assert abs(e_big - e_small) > 1e-6
    # translation of the whole periodic system leaves it unchanged
    moved = small.copy()
    moved.positions += 1.1
    moved.wrap()
    assert energy_forces(calc, moved)[0] == pytest.approx(e_small, abs=1e-9)


def test_stress_is_strain_derivative():
    calc = calc_for(random_model(elements=(1, 8), cutoff=4.0))
    water = molecule("H2O")
    water.center(vacuum=0.0)
    box = water.copy()
    box.cell, box.pbc = np.diag([3.2, 3.4, 3.6]), True
    box.calc = calc
    stress = box.get_stress(voigt=False)
    np.testing.assert_allclose(stress, finite_difference_stress(calc, box, h=1e-6), atol=1e-7)


def test_batch_equals_single_frames(ethanol):
    model = random_model()
    nl = NeighborListBuilder(model.cutoff)
    frames = [ethanol, molecule("H2O"), molecule("CH4")]
    graphs = [graph_from_atoms(a, model.elements, nl, dtype=torch.float64) for a in frames]
    batched = model(collate(graphs))
    for k, g in enumerate(graphs):
        single = model(g)
        assert batched.energy[k].item() == pytest.approx(single.energy.item(), abs=1e-10)
    singles = torch.cat([model(g).forces for g in graphs])
    torch.testing.assert_close(batched.forces, singles)


def test_float32_close_to_float64(ethanol):
    model = random_model()
    e64, f64 = energy_forces(MLIPCalculator(model), ethanol)
    e32, f32 = energy_forces(MLIPCalculator(random_model(), dtype=torch.float32), ethanol)
    assert abs(e32 - e64) < 1e-3
    np.testing.assert_allclose(f32, f64, atol=1e-4)


def test_unknown_element_is_refused():
    calc = calc_for(random_model(elements=(1, 8)))
    with pytest.raises(KeyError, match=r"\['N'\]"):
        energy_forces(calc, molecule("NH3"))


def test_smooth_at_cutoff():
    """Energy is continuous as a neighbour crosses the cutoff."""
    model = random_model(elements=(1, 8), cutoff=3.0)
    calc = calc_for(model)
    e = [energy_forces(calc, Atoms("OH", positions=[[0, 0, 0], [0, 0, d]]))[0] for d in (2.9999, 3.0001)]
    assert abs(e[0] - e[1]) < 1e-8


def test_spin_is_an_input_when_enabled():
    """spin_states > 0: the multiplicity changes the energy; zero-initialised it changes nothing."""
    torch.manual_seed(0)
    model = NewtonNet(elements=[1, 8], cutoff=4.0, n_features=16, n_layers=2, n_basis=8, spin_states=4).double()
    ho2 = Atoms("OOH", positions=[[0.45, 0.27, 0.0], [-0.67, -0.15, 0.0], [1.79, -1.0, 0.0]])
    doublet, quartet = ho2.copy(), ho2.copy()
    doublet.info["spin"], quartet.info["spin"] = 2, 4
    calc = MLIPCalculator(model)
    assert energy_forces(calc, doublet)[0] == pytest.approx(energy_forces(calc, quartet)[0], abs=1e-12)
    with torch.no_grad():
        model.spin_embedding.weight.normal_()
    e2, f2 = energy_forces(calc, doublet)
    e4, _ = energy_forces(calc, quartet)
    assert abs(e2 - e4) > 1e-4
    R = Rotation.random(random_state=5).as_matrix()
    turned = doublet.copy()
    turned.positions = doublet.positions @ R.T
    e2r, f2r = energy_forces(calc, turned)
    assert e2r == pytest.approx(e2, abs=1e-9)
    np.testing.assert_allclose(f2r, f2 @ R.T, atol=1e-9)
    sextet = ho2.copy()
    sextet.info["spin"] = 6
    with pytest.raises(ValueError, match="spin multiplicity 6"):
        energy_forces(calc, sextet)


def zbl_reference(z1, z2, r):
    """ZBL universal screened repulsion (eV) written out independently, no switching."""
    a = 0.8854 * 0.529177 / (z1**0.23 + z2**0.23)
    x = r / a
    phi = 0.18175 * np.exp(-3.1998 * x) + 0.50986 * np.exp(-0.94229 * x) + 0.28022 * np.exp(-0.4029 * x) + 0.02817 * np.exp(-0.20162 * x)
    return 14.399645 * z1 * z2 / r * phi


def test_zbl_repulsion_is_the_screened_coulomb_law_inside_the_bond_length():
    """zbl=True adds ZBL between atoms closer than their covalent radii; nothing beyond; F = -dE/dr."""
    from ase.data import covalent_radii

    model = random_model(elements=(1, 8), cutoff=4.0)
    repulsive = random_model(elements=(1, 8), cutoff=4.0)
    repulsive.repulsion = NewtonNet(elements=[1, 8], cutoff=4.0, zbl=True, zbl_radius_scale=1.0).repulsion.double()
    plain, zbl = calc_for(model), calc_for(repulsive)
    r_switch = covalent_radii[1] + covalent_radii[8]
    for r in (0.3, 0.6, 0.9, 1.2):
        oh = Atoms("OH", positions=[[0, 0, 0], [0, 0, r]])
        extra = energy_forces(zbl, oh)[0] - energy_forces(plain, oh)[0]
        x = r / r_switch
        switch = (1 - 28 * x**6 + 48 * x**7 - 21 * x**8) if x < 1 else 0.0
        assert extra == pytest.approx(zbl_reference(8, 1, r) * switch, rel=1e-4, abs=1e-12), r
    oh = Atoms("OH", positions=[[0, 0, 0], [0.1, 0.2, 0.55]])
    e, f = energy_forces(zbl, oh)
    assert f[1] @ oh.positions[1] > 0  # pushed apart
    np.testing.assert_allclose(f[1], finite_difference_forces(zbl, oh, h=1e-6)[1], rtol=1e-6)


def test_zbl_range_per_element_mixes_the_scaled_covalent_radii():
    """zbl_radius_scale {H: 1.0} (O keeps 0.75): the prior ends at 1.0 R_H + 1.0 R_H for H-H,
    1.0 R_H + 0.75 R_O for O-H and 0.75 R_O + 0.75 R_O for O-O, and is the switched ZBL law inside."""
    from ase.data import covalent_radii

    model = random_model(elements=(1, 8), cutoff=4.0)
    repulsive = random_model(elements=(1, 8), cutoff=4.0)
    repulsive.repulsion = NewtonNet(elements=[1, 8], cutoff=4.0, zbl=True, zbl_radius_scale={"H": 1.0}).repulsion.double()
    plain, zbl = calc_for(model), calc_for(repulsive)
    r_h, r_o = covalent_radii[1], covalent_radii[8]
    for pair, (z1, z2), r_switch in (("HH", (1, 1), 2 * r_h), ("OH", (8, 1), r_h + 0.75 * r_o), ("OO", (8, 8), 1.5 * r_o)):
        for x in (0.5, 0.8, 0.99, 1.01):
            atoms = Atoms(pair, positions=[[0, 0, 0], [0, 0, x * r_switch]])
            extra = energy_forces(zbl, atoms)[0] - energy_forces(plain, atoms)[0]
            switch = (1 - 28 * x**6 + 48 * x**7 - 21 * x**8) if x < 1 else 0.0
            assert extra == pytest.approx(zbl_reference(z1, z2, x * r_switch) * switch, rel=1e-4, abs=1e-12), (pair, x)


def test_zbl_exclusive_core_leaves_the_core_to_the_prior():
    """zbl_exclusive_core: a pair inside half the prior's range b has the network energy of the two
    atoms apart plus the prior (bounded, whatever the weights); beyond b the network is untouched;
    F = -dE/dx where the network fades in between b/2 and b."""
    from ase.data import covalent_radii

    plain = random_model(elements=(1, 8), cutoff=4.0)
    torch.manual_seed(0)  # the same weights: the prior adds buffers, no parameters
    core = NewtonNet(elements=[1, 8], cutoff=4.0, n_features=16, n_layers=2, n_basis=8, zbl=True,
                     zbl_radius_scale={"H": 1.0}, zbl_exclusive_core=True).double()
    core.load_state_dict(plain.state_dict(), strict=False)
    prior = NewtonNet(elements=[1, 8], cutoff=4.0, zbl=True, zbl_radius_scale={"H": 1.0}).double().repulsion
    only_prior = random_model(elements=(1, 8), cutoff=4.0)
    only_prior.repulsion = prior
    for module in only_prior.modules():  # a zero network: only_prior's energy is the prior plus references
        for p in module.parameters(recurse=False):
            p.data.zero_()
    only_prior.references.copy_(plain.references)
    plain_calc, core_calc, prior_calc = calc_for(plain), calc_for(core), calc_for(only_prior)
    r_h, r_o = covalent_radii[1], covalent_radii[8]
    for pair, b in (("HH", 2 * r_h), ("OH", r_h + 0.75 * r_o)):
        apart = energy_forces(plain_calc, Atoms(pair, positions=[[0, 0, 0], [0, 0, 6.0]]))[0]
        references = energy_forces(prior_calc, Atoms(pair, positions=[[0, 0, 0], [0, 0, 6.0]]))[0]
        for r in (0.05, 0.2, 0.5 * b):
            atoms = Atoms(pair, positions=[[0, 0, 0], [0, 0, r]])
            zbl = energy_forces(prior_calc, atoms)[0] - references
            assert zbl > 0
            assert energy_forces(core_calc, atoms)[0] == pytest.approx(apart + zbl, rel=1e-9, abs=1e-9), (pair, r)
        for r in (b, 1.2, 2.0):
            atoms = Atoms(pair, positions=[[0, 0, 0], [0, 0, r]])
            assert energy_forces(core_calc, atoms)[0] == pytest.approx(energy_forces(plain_calc, atoms)[0], abs=1e-10)
    water = Atoms("OHH", positions=[[0, 0, 0], [0.1, 0.05, 0.6], [0.9, 0.1, -0.3]])  # O-H1 0.61 A: fading in
    e, f = energy_forces(core_calc, water)
    np.testing.assert_allclose(f, finite_difference_forces(core_calc, water, h=1e-6), rtol=1e-5, atol=1e-7)
    assert e != pytest.approx(energy_forces(plain_calc, water)[0])


def test_cell_volume_is_the_absolute_determinant():
    """The triple product the stress divides by (plain ops, so it exports) equals |det(cell)|."""
    from ffpt.models.potential import cell_volume

    cells = torch.tensor(np.random.default_rng(0).normal(size=(4, 3, 3)))
    np.testing.assert_allclose(cell_volume(cells).numpy(), np.abs(np.linalg.det(cells.numpy())), rtol=1e-12)


def test_forward_without_the_spin_check_gives_the_same_prediction(ethanol):
    """``check=False`` (the traced forward of ffpt export) only skips the check; numbers are unchanged."""
    model = random_model()
    graph = graph_from_atoms(ethanol, model.elements, NeighborListBuilder(model.cutoff), dtype=torch.float64)
    a, b = model(graph), model(graph, check=False)
    assert torch.equal(a.energy, b.energy) and torch.equal(a.forces, b.forces)
