"""PySCF Kohn-Sham DFT teacher: any functional and basis, RKS or UKS from the frame's spin.

Energies and forces come out in eV and eV/A (PySCF works in hartree and bohr). The electronic
state is set by ``atoms.info["charge"]`` (e, default 0) and ``atoms.info["spin"]`` (multiplicity
2S+1, default: the lowest one consistent with the electron count); open shells use UKS.

An SCF that does not converge is retried once with PySCF's second-order (Newton) solver; if that
fails too, the frame raises :class:`~ffpt.teachers.base.LabelFailure`, never a silent label.
A converged SCF is checked for internal instability (e.g. a broken-symmetry solution of lower
energy at stretched bonds) and re-optimised from the unstable direction until stable. Open shells
are also started from a broken-symmetry guess (see ``spin_flip_guess``), and the lower solution is kept.
"""

from __future__ import annotations

import numpy as np
import pyscf
from ase import Atoms
from ase.units import Bohr, Hartree
from pyscf import dft, gto, lib

from ffpt.teachers.base import Label, LabelFailure, Teacher, TeacherInfo, electronic_state


def _flag(name: str, value) -> bool:
    """A boolean option; strings such as "false" are refused rather than read as True."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"option '{name}' must be true or false, got {value!r}")
    return bool(value)


class PySCFTeacher(Teacher):
    """Kohn-Sham DFT single points with PySCF.

    Options (all but ``threads`` and ``max_memory`` enter the provenance and cache keys):
    ``xc`` functional (any PySCF/libxc name, ``"hf"`` for Hartree-Fock), ``basis``,
    ``density_fit`` (RI-J/K with ``auxbasis``, PySCF's default fitting basis when None),
    ``grids_level`` / ``nlcgrids_level`` (XC and VV10 grids; 2 and 1 are accurate to ~0.01
    kcal/mol for wB97X-V while 5-15x cheaper than PySCF's VV10 default), ``conv_tol`` (hartree),
    ``max_cycle``, ``fallback`` (retry unconverged SCFs with the Newton solver),
    ``stability`` (internal stability analysis and re-optimisation, up to ``max_stability_steps``;
    an instability whose re-optimisation lowers the energy by less than ``stability_tol`` hartree is
    a rotation among degenerate orbitals, e.g. of an O atom, and is accepted),
    ``spin_flip_guess`` (open shells: also start from a broken-symmetry guess built from the
    multiplicity+2 state and keep the lower solution; about twice the cost),
    ``threads`` (OpenMP threads for this process; None leaves it), ``max_memory`` (MB).
    """

    def __init__(
        self,
        xc: str = "wb97x-v",
        basis: str = "cc-pvtz",
        *,
        density_fit: bool = True,
        auxbasis: str | None = None,
        grids_level: int = 2,
        nlcgrids_level: int = 1,
        conv_tol: float = 1e-9,
        max_cycle: int = 100,
        fallback: bool = True,
        stability: bool = True,
        max_stability_steps: int = 3,
        stability_tol: float = 1e-6,
        spin_flip_guess: bool = True,
        threads: int | None = None,
        max_memory: int = 4000,
    ):
        super().__init__()
        self.options = {
            "xc": str(xc),
            "basis": str(basis),
            "density_fit": _flag("density_fit", density_fit),
            "auxbasis": auxbasis,
            "grids_level": int(grids_level),
            "nlcgrids_level": int(nlcgrids_level),
            "conv_tol": float(conv_tol),
            "max_cycle": int(max_cycle),
            "fallback": _flag("fallback", fallback),
            "stability": _flag("stability", stability),
            "max_stability_steps": int(max_stability_steps),
            "stability_tol": float(stability_tol),
            "spin_flip_guess": _flag("spin_flip_guess", spin_flip_guess),
        }
        self.max_memory = int(max_memory)
        if threads is not None:
            lib.num_threads(int(threads))

    @property
    def info(self) -> TeacherInfo:
        level = f"{self.options['xc'].upper()}/{self.options['basis']}"
        return TeacherInfo(name="pyscf", level=level, version=pyscf.__version__, options=dict(self.options))

    def molecule(self, atoms: Atoms) -> gto.Mole:
        """PySCF molecule of a frame (positions in A, charge and spin from ``info``)."""
        if atoms.pbc.any():
            raise LabelFailure("the pyscf teacher labels molecules only; this frame is periodic")
        charge, multiplicity = electronic_state(atoms)
        try:
            return gto.M(
                atom=[(int(z), tuple(map(float, r))) for z, r in zip(atoms.numbers, atoms.positions)],
                unit="Angstrom",
                basis=self.options["basis"],
                charge=charge,
                spin=multiplicity - 1,
                symmetry=False,
                verbose=0,
                max_memory=self.max_memory,
            )
        except (RuntimeError, KeyError, ValueError) as exc:
            raise LabelFailure(f"cannot build the PySCF molecule: {exc}") from exc

    def _mean_field(self, mol: gto.Mole):
        o = self.options
        mf = dft.RKS(mol) if mol.spin == 0 else dft.UKS(mol)
        mf.xc = o["xc"]
        mf.grids.level = o["grids_level"]
        mf.nlcgrids.level = o["nlcgrids_level"]
        mf.conv_tol = o["conv_tol"]
        mf.max_cycle = o["max_cycle"]
        mf.chkfile = None
        mf.verbose = 0
        if o["density_fit"]:
            mf = mf.density_fit(auxbasis=o["auxbasis"])
        return mf

    def _converge(self, mf, dm0=None):
        """Run the SCF from ``dm0``; Newton fallback; return the converged mean-field object."""
        mf.kernel(dm0)
        if mf.converged:
            return mf
        tried = f"SCF not converged in {mf.max_cycle} cycles"
        if self.options["fallback"]:
            newton = mf.newton()
            newton.kernel(mf.mo_coeff, mf.mo_occ)
            if newton.converged:
                return newton
            tried += " nor with the Newton (second-order) fallback"
        raise LabelFailure(f"{tried} ({self.info.level}, conv_tol={mf.conv_tol:g} Eh)")

    def _spin_flip_guess(self, mol: gto.Mole) -> np.ndarray | None:
        """Broken-symmetry density: orbitals of the multiplicity+2 state with one alpha electron
        moved to beta. Reaches low-spin states (e.g. H + O2 doublets) that atomic guesses miss."""
        if mol.spin + 2 > mol.nelectron:
            return None
        high = mol.copy()
        high.spin = mol.spin + 2
        high.build()
        if high.nelec[0] > high.nao_nr():  # the basis has too few orbitals for that state
            return None
        mf = self._mean_field(high)
        mf.kernel()
        alpha_mo, beta_mo = mf.mo_coeff
        n_alpha, n_beta = high.nelec
        alpha = alpha_mo[:, : n_alpha - 1]
        beta = np.hstack([beta_mo[:, :n_beta], alpha_mo[:, n_alpha - 1 : n_alpha]])
        return np.array([alpha @ alpha.T, beta @ beta.T])

    def scf(self, atoms: Atoms):
        """Lowest converged (and, with ``stability``, internally stable) mean-field solution of a
        frame, from PySCF's default guess and, for open shells with ``spin_flip_guess``, from a
        broken-symmetry guess."""
        mol = self.molecule(atoms)
        solutions, errors = [], []

        def attempt(dm0) -> None:
            try:
                solutions.append(self._stable(self._converge(self._mean_field(mol), dm0)))
            except LabelFailure as exc:
                errors.append(str(exc))

        attempt(None)
        if mol.spin > 0 and self.options["spin_flip_guess"]:
            dm0 = self._spin_flip_guess(mol)
            if dm0 is not None:
                attempt(dm0)
        if not solutions:
            raise LabelFailure("; ".join(errors))
        return min(solutions, key=lambda mf: mf.e_tot)

    def _stable(self, mf):
        """Follow internal instabilities of a converged SCF down to a stable solution."""
        occupations = np.asarray(mf.mo_occ)
        occupations = occupations.reshape(-1, occupations.shape[-1])  # one row per spin channel
        rotations = sum(int((o > 0).sum() * (o == 0).sum()) for o in occupations)
        if not self.options["stability"] or rotations == 0:
            return mf
        for _ in range(self.options["max_stability_steps"]):
            mo, _, stable, _ = mf.stability(return_status=True)
            if stable:
                return mf
            previous = mf.e_tot
            mf = self._converge(mf, mf.make_rdm1(mo, mf.mo_occ))
            if mf.e_tot > previous - self.options["stability_tol"]:
                return mf  # a rotation among (near-)degenerate orbitals, not a lower state
        raise LabelFailure(
            f"SCF still finds lower states after {self.options['max_stability_steps']} "
            f"stability re-optimisations (last energy {mf.e_tot:.8f} Eh)"
        )

    def compute(self, atoms: Atoms) -> Label:
        mf = self.scf(atoms)
        gradient = mf.nuc_grad_method().kernel()  # hartree/bohr
        forces = -np.asarray(gradient) * (Hartree / Bohr)
        if not np.all(np.isfinite(forces)) or not np.isfinite(mf.e_tot):
            raise LabelFailure("PySCF returned non-finite energy or forces")
        return Label(energy=float(mf.e_tot) * Hartree, forces=forces)
