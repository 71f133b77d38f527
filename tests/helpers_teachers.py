"""Test teachers importable by spawned labelling workers (tests/ is on their sys.path).

``CountingMorse`` labels with ASE's Morse pair potential and appends one line per computed frame
(a fingerprint of its positions) to ``log_file``, so tests can count teacher calls across processes.
Frames with ``info["charge"] == FAIL_CHARGE`` fail with a :class:`LabelFailure`, frames with
``info["charge"] == CRASH_CHARGE`` raise an unexpected ``RuntimeError`` (a bug or a transient error).
"""

from __future__ import annotations

import hashlib
import os
import time

import numpy as np
from ase import Atoms
from ase.calculators.morse import MorsePotential

from ffpt.teachers import Label, LabelFailure, Teacher, TeacherInfo

FAIL_CHARGE = -3
CRASH_CHARGE = -2


def fingerprint(atoms: Atoms) -> str:
    """Short hash of the rounded positions, identifying a frame in the call log."""
    return hashlib.sha1((np.round(atoms.positions, 6) + 0.0).tobytes()).hexdigest()[:16]


class CountingMorse(Teacher):
    """Morse pair potential (eV, A) that logs every frame it computes; ``delay`` (s) mimics a slow teacher."""

    def __init__(self, log_file: str, delay: float = 0.0, epsilon: float = 1.0, r0: float = 1.1):
        super().__init__()
        self.log_file = log_file
        self.delay = float(delay)
        self.params = {"epsilon": float(epsilon), "r0": float(r0)}

    @property
    def info(self) -> TeacherInfo:
        # log_file and delay do not change labels, so they stay out of the cache key
        return TeacherInfo(name="counting-morse", level="Morse", version="test", options=dict(self.params))

    def compute(self, atoms: Atoms) -> Label:
        if atoms.info.get("charge") == FAIL_CHARGE:
            raise LabelFailure(f"charge {FAIL_CHARGE} is not supported")
        if atoms.info.get("charge") == CRASH_CHARGE:
            raise RuntimeError("simulated crash")
        time.sleep(self.delay)
        calc = MorsePotential(epsilon=self.params["epsilon"], r0=self.params["r0"], rho0=6.0)
        probe = atoms.copy()
        probe.calc = calc
        energy = probe.get_potential_energy()
        forces = probe.get_forces()
        fd = os.open(self.log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, (fingerprint(atoms) + "\n").encode())
        finally:
            os.close(fd)
        return Label(energy=float(energy), forces=np.array(forces))


class LoggedMorse(CountingMorse):
    """:class:`CountingMorse` logging to the file named by ``$FFPT_TEACHER_LOG``: a log path among the
    teacher options would be hashed by content into cached stage inputs, and the log grows."""

    def __init__(self, delay: float = 0.0, epsilon: float = 1.0, r0: float = 1.1):
        super().__init__(os.environ["FFPT_TEACHER_LOG"], delay, epsilon, r0)
