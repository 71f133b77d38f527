"""The engine's Python per MD step, warm and after a model call has flushed the core's caches.

``ffpt md`` (Langevin 500 K, 0.5 fs, stability cadence: frames and checkpoints every 100 steps, monitors
every 20) on ethanol with a calculator that returns harmonic forces to the start geometry (so the run
never fails) and, before answering a new frame, does the work of ``--load``:

- ``none``: nothing (the engine alone, caches warm);
- ``model PATH``: one call of an ffpt calculator (e.g. an exported ``.pt2``), its answer discarded;
- ``numpy MB``: three passes over an array of that many megabytes (flushes the caches without a model).

Against the same calculator called over the run's saved frames (the bare loop), per CPU second of the
process: engine cost per step = md step - bare call, overhead = engine / md step.

    OMP_NUM_THREADS=1 python benchmarks/engine_cold_cache.py --load model runs/m/model.pt2 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import ase.io
import numpy as np
from ase.calculators.calculator import Calculator

import ffpt
from ffpt.dynamics.engine import Observer
from ffpt.sampling.seeds import from_smiles
from ffpt.simulate.config import MDConfig
from ffpt.simulate.md import run_md


class Springs(Calculator):
    """Harmonic forces (5 eV/A^2) to ``x0``, computed after ``work()`` for each new frame."""

    implemented_properties = ["energy", "forces"]

    def __init__(self, x0: np.ndarray, work):
        super().__init__()
        self.x0, self.work, self._key = x0.copy(), work, None

    def get_forces(self, atoms=None):
        key = atoms.positions.tobytes()
        if key != self._key:
            self.work(atoms)
            d = atoms.positions - self.x0
            self._forces, self._energy, self._key = -5.0 * d, 2.5 * float((d * d).sum()), key
        return self._forces.copy()

    def get_potential_energy(self, atoms=None, force_consistent=False):
        self.get_forces(atoms)
        return self._energy


class Clock(Observer):
    """CPU time from step ``first`` to the last step (called on those steps only)."""

    name = "clock"

    def __init__(self, first: int):
        self.first = self.every = first

    def on_step(self, state):
        if state.step == self.first:
            self.t0 = time.process_time()
        self.t1, self.steps = time.process_time(), state.step - self.first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--load", nargs="+", default=["none"], help="none | model PATH | numpy MB")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    kind = args.load[0]
    if kind == "model":
        inner = ffpt.load_calculator(args.load[1])
        work = inner.get_forces
    elif kind == "numpy":
        buffer = np.zeros(int(float(args.load[1]) * 1e6 / 8))
        work = lambda atoms: [buffer.sum() for _ in range(3)]  # noqa: E731
    else:
        work = lambda atoms: None  # noqa: E731
    atoms = from_smiles("CCO", seed=0).atoms
    config = MDConfig(steps=args.steps + 20, timestep_fs=0.5, temperature_K=500, ensemble="langevin", seed=0,
                      save_every=100, check_every=20,
                      monitors={"max_bond_deviation": 2.0, "min_distance": 0.3, "bond_reference": "start"})
    engine_us, overhead = [], []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as out:
            clock = Clock(20)
            run_md(atoms, Springs(atoms.positions, work), config, out, observers=[clock], progress=True)
            md = (clock.t1 - clock.t0) / clock.steps
            frames = [f.positions.copy() for f in ase.io.read(f"{out}/trajectory.extxyz", ":")]
        moving = atoms.copy()
        moving.calc = Springs(atoms.positions, work)
        moving.get_forces()
        t0 = time.process_time()
        for k in range(args.steps):
            moving.positions[:] = frames[k % len(frames)] + 1e-6 * (k // len(frames))  # a new frame each call
            moving.get_forces()
        bare = (time.process_time() - t0) / args.steps
        engine_us.append(1e6 * (md - bare))
        overhead.append(1 - bare / md)
        print(f"md {1e6 * md:.0f} us, bare {1e6 * bare:.0f} us, engine {1e6 * (md - bare):.0f} us, "
              f"overhead {100 * (1 - bare / md):.1f} %", flush=True)
    print(f"load {' '.join(args.load)}: engine {statistics.median(engine_us):.0f} us per step "
          f"(median of {args.repeats}), overhead {100 * statistics.median(overhead):.1f} %")


if __name__ == "__main__":
    main()
