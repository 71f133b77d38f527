"""The one MD engine of ffpt: an ASE integrator stepped in a loop, with observers.

Used by ``ffpt md`` (:func:`ffpt.simulate.md.run_md`), ``ffpt metad``
(:func:`ffpt.simulate.metad.run_metadynamics`) and FF-MD sampling (:func:`ffpt.sampling.md.md_frames`).
Units: fs, K, eV, A.

Integrators (:class:`Integrator`): ``nve`` (velocity Verlet), ``langevin`` (ASE Langevin, NVT),
``bussi`` (canonical velocity rescaling, NVT) and ``npt`` (ASE's isotropic Martyna-Tobias-Klein
barostat with Nose-Hoover chains, deterministic; periodic cells), all ASE's, the stochastic ones
drawing noise from one ``numpy.random.Generator``. The first three step through
:func:`ffpt.dynamics.ase_steps.lean_step`: ASE's arithmetic and draws on the atoms' own arrays, bit
for bit ASE's positions and momenta without its per-call copies.

Observers
---------
An :class:`Observer` is called after the start frame (step 0) and after every step, in list order,
with the :class:`MDState`. What the engine ships: trajectory sinks
(:class:`ffpt.dynamics.trajectory.TrajectoryWriter`), stability monitors (:class:`MonitorObserver`),
hill deposition and COLVAR rows of metadynamics (:mod:`ffpt.simulate.metad`) and a progress bar
(:class:`ProgressBar`). A new capability (e.g. an uncertainty monitor for committee MD) is one more
observer: subclass :class:`Observer`, override what it needs::

    class Uncertainty(Observer):
        name = "uncertainty"

        def on_step(self, state):
            if state.step % 10 == 0 and committee_spread(state.atoms) > 0.2:
                return Stop(self.name, "force spread above 0.2 eV/A")
            return None

``on_step`` returning a :class:`Stop` ends the run after this step (later observers of the step
still see it in ``state.stop``, so the failing frame is saved). ``state_dict``/``load_state_dict``
carry whatever the observer needs to continue exactly after a kill (a file's byte length to
truncate back to, a window of past values); ``start`` begins its outputs anew.

Checkpoint and resume
---------------------
:func:`run` writes ``checkpoint.json`` (atomically) every ``checkpoint_every`` steps, at the last
step and when the run stops: step, positions, momenta, cell, the RNG bit-generator state, the
thermostat's bath energy, the NPT integrator's thermostat and barostat variables, every observer's
state and the run's config. The checkpoint lands off the stepping thread (:class:`CheckpointWriter`):
the step's state is serialised at once, then the files observers leave to it
(:meth:`Observer.durable_files`, e.g. the trajectory) are flushed to disk and the checkpoint is
renamed into place while the next steps run; at most one is in flight, and a run ends (or fails)
only after the last has landed. Called again on the same folder it checks
(:func:`check_resumable`) that config and structure match (``steps`` may grow), restores everything
and continues bit-identically to an uninterrupted run (same machine). A finished run is not rerun.
``stability.json`` holds the :class:`MDResult`.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar, Literal, Sequence

import numpy as np
from ase import Atoms, units

from ffpt.config import ConfigError
from ffpt.dynamics.ase_steps import lean_step
from ffpt.errors import UserError
from ffpt.fileio import absolute, atomic_write_json, atomic_write_text, file_sha256, located_os_error

CHECKPOINT_FILE = "checkpoint.json"
STABILITY_FILE = "stability.json"
CHECKPOINT_FORMAT = "ffpt-md-checkpoint/1"


class StartFrameError(UserError):
    """The start frame fails a stability monitor before any step: an input error, not an instability."""


class CheckpointError(UserError):
    """A checkpoint that cannot be read (truncated, foreign or corrupted); the message names it."""


# --------------------------------------------------------------------------- integrators


@dataclass(frozen=True)
class Integrator:
    """An ASE integrator and the initial velocities. Units: fs, K, 1/fs, bar.

    ``fix_com`` keeps the centre of mass fixed (removes 3 degrees of freedom); ``stationary`` removes
    the initial total momentum; ``zero_rotation`` the initial angular momentum of non-periodic systems.
    ``taut_fs``: coupling time of the Bussi thermostat, or of the Nose-Hoover chain of ``npt``;
    ``taup_fs``: the barostat's (ASE suggests about 100 and 1000 time steps); ``pressure_bar``: the
    target pressure of ``npt``. ASE's MTK integrator takes no constraints, so ``npt`` ignores ``fix_com``:
    the total momentum, removed at the start (``stationary``), stays zero under it.
    ``nvt_steps`` (``npt`` only): the first steps run at fixed cell under the Bussi thermostat (same
    ``taut_fs``), then the barostat starts. A start frame made with another potential (a TIP3P box for a
    GFN2-xTB model) first sheds its strain, which would otherwise kick the cell far off its density.
    """

    ensemble: Literal["nve", "langevin", "bussi", "npt"]
    timestep_fs: float
    temperature_K: float
    friction_per_fs: float = 0.01
    taut_fs: float = 100.0
    pressure_bar: float = 1.01325
    taup_fs: float = 1000.0
    fix_com: bool = True
    stationary: bool = True
    zero_rotation: bool = True
    nvt_steps: int = 0

    def barostat_on(self, step: int) -> bool:
        """Whether the step after ``step`` is integrated under the barostat."""
        return self.ensemble == "npt" and step >= self.nvt_steps

    def initialize_velocities(self, atoms: Atoms, rng: np.random.Generator) -> None:
        """Maxwell-Boltzmann momenta at ``temperature_K``, then the requested momentum removals."""
        from ase.md.velocitydistribution import Stationary, ZeroRotation, thermalize_momenta

        thermalize_momenta(atoms, self.temperature_K, rng=rng)
        if self.stationary:
            Stationary(atoms)
        if self.zero_rotation and not atoms.pbc.any() and len(atoms) > 2:
            ZeroRotation(atoms)

    def make(self, atoms: Atoms, rng: np.random.Generator, step: int = 0):
        """The ASE dynamics object on ``atoms`` for the step after ``step`` (its noise from ``rng``)."""
        dt = self.timestep_fs * units.fs
        if self.ensemble == "nve":
            from ase.md.verlet import VelocityVerlet

            return VelocityVerlet(atoms, timestep=dt)
        if self.ensemble == "langevin":
            from ase.md.langevin import Langevin

            return Langevin(atoms, timestep=dt, temperature_K=self.temperature_K,
                            friction=self.friction_per_fs / units.fs, fixcm=False, rng=rng)
        if self.ensemble == "npt":
            from ase.md.nose_hoover_chain import IsotropicMTKNPT

            if not atoms.pbc.all():
                raise ConfigError("ensemble 'npt' needs a structure periodic in all three directions")
            if atoms.constraints:
                names = ", ".join(type(c).__name__ for c in atoms.constraints)
                raise ConfigError(f"ensemble 'npt' (ASE's MTK integrator) takes no constraints; the structure has {names}")
        if self.barostat_on(step):
            return IsotropicMTKNPT(atoms, timestep=dt, temperature_K=self.temperature_K,
                                   pressure_au=self.pressure_bar * units.bar, tdamp=self.taut_fs * units.fs,
                                   pdamp=self.taup_fs * units.fs)
        from ase.md.bussi import Bussi

        return Bussi(atoms, timestep=dt, temperature_K=self.temperature_K, taut=self.taut_fs * units.fs, rng=rng)

    @property
    def uses_fix_com(self) -> bool:
        return self.fix_com and self.ensemble != "npt"

    def state_dict(self, dyn) -> dict | None:
        """The integrator's own variables beyond positions, momenta and cell (JSON-able): the NPT
        reference cell, log volume strain and its momentum, thermostat and barostat chains; ``None``
        for the others (the Bussi bath energy travels as ``bath_energy``)."""
        if not hasattr(dyn, "_barostat"):  # not npt, or its NVT lead-in
            return None
        thermostat, barostat = dyn._thermostat, dyn._barostat
        return {
            "cell0": dyn._cell0.tolist(), "volume0": float(dyn._volume0),
            "eps": float(dyn._eps), "p_eps": float(dyn._p_eps),
            "eta": thermostat._eta.tolist(), "p_eta": thermostat._p_eta.tolist(),
            "xi": barostat._xi.tolist(), "p_xi": barostat._p_xi.tolist(),
        }

    def load_state_dict(self, dyn, state: dict | None) -> None:
        """Restore :meth:`state_dict` output into a freshly made ``dyn``."""
        if state is None:
            return
        thermostat, barostat = dyn._thermostat, dyn._barostat
        dyn._cell0, dyn._volume0 = np.array(state["cell0"], dtype=float), float(state["volume0"])
        dyn._eps, dyn._p_eps = float(state["eps"]), float(state["p_eps"])
        thermostat._eta, thermostat._p_eta = np.array(state["eta"]), np.array(state["p_eta"])
        barostat._xi, barostat._p_xi = np.array(state["xi"]), np.array(state["p_xi"])


# --------------------------------------------------------------------------- observers


@dataclass(frozen=True)
class Stop:
    """Why a run stopped early: the observer or monitor that fired, and a one-line reason."""

    monitor: str
    reason: str


@dataclass
class MDState:
    """What observers see after each step. ``step`` counts from the run's start (0 = start frame)."""

    atoms: Atoms
    step: int
    time_fs: float
    last: bool  # the last step the run will take (``steps`` reached)
    wall_s: float  # wall time of the run so far, resumed parts included
    dynamics: object  # the ASE integrator (e.g. ``transferred_energy`` of Bussi)
    stop: Stop | None = None  # set by the first observer that stops the run at this step

    @property
    def bath_energy(self) -> float | None:
        """Energy the Bussi thermostat put into the system so far (eV); ``None`` for other integrators."""
        value = getattr(self.dynamics, "transferred_energy", None)
        return None if value is None else float(value)

    @property
    def pressure_bar(self) -> float | None:
        """Instantaneous pressure (bar, ideal-gas term included) under a barostat; ``None`` otherwise."""
        if not hasattr(self.dynamics, "_barostat"):
            return None
        stress = self.atoms.get_stress(voigt=False, include_ideal_gas=True)
        return float(-np.trace(stress) / 3 / units.bar)


class Observer:
    """Something done after the start frame and after every MD step. Subclass and override.

    The engine calls ``start`` once for a new run, ``load_state_dict`` instead when it resumes one,
    ``on_step`` after step 0 and every later step, ``state_dict`` when it writes a checkpoint and
    ``close`` at the end. Everything ``state_dict`` returns must be JSON-serialisable.
    """

    name: ClassVar[str] = "observer"
    # An observer that acts only on multiples of a stride (and on the last and a stopping step) says so
    # with ``every`` (or ``config.every``): the engine then skips calling it on steps where no observer
    # acts, which saves the per-step Python of MD with a fast model (BENCHMARKS.md 16).

    def start(self, state: MDState) -> None:
        """Begin outputs anew (a fresh run)."""

    def on_step(self, state: MDState) -> Stop | None:
        """Observe ``state``; return a :class:`Stop` to end the run after this step."""
        return None

    def state_dict(self) -> dict:
        """State needed to continue exactly after a kill (default: none)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` output (and cut outputs back to it)."""

    def durable_files(self) -> Sequence[Path]:
        """Files this observer appends to without flushing them to disk itself: the run's checkpoint
        writer flushes them before the checkpoint that counts their contents lands (default none)."""
        return ()

    def close(self) -> None:
        """Release files or bars at the end of a run."""

    def summary(self) -> dict | None:
        """What the run's result reports of this observer (``MDResult.observed[name]``); default nothing."""
        return None


class MonitorObserver(Observer):
    """Stability monitors (:mod:`ffpt.simulate.monitors`) checked every ``every`` steps and at the
    last step; the first that fires stops the run, reported under its own name."""

    name = "monitors"

    def __init__(self, monitors: Sequence, every: int = 1):
        if every < 1:
            raise ValueError(f"monitor interval must be >= 1 step, got {every}")
        self.monitors = list(monitors)
        self.every = int(every)

    def on_step(self, state: MDState) -> Stop | None:
        if state.stop is not None or (state.step % self.every and not state.last):
            return None
        for monitor in self.monitors:
            reason = monitor.check(state.atoms, state.time_fs)
            if reason is not None and state.step == 0:  # nothing has moved yet: the input is at fault
                raise StartFrameError(f"the start frame already fails monitor '{monitor.name}' ({reason}); "
                                      "an MD run cannot measure stability from there")
            if reason is not None:
                return Stop(monitor.name, reason)
        return None

    def state_dict(self) -> dict:
        return {f"{k}:{m.name}": m.state_dict() for k, m in enumerate(self.monitors)}

    def load_state_dict(self, state: dict) -> None:
        for k, monitor in enumerate(self.monitors):
            monitor.load_state_dict(state.get(f"{k}:{monitor.name}", {}))


class ProgressBar(Observer):
    """A tqdm bar over the run's steps, moved every ``every`` steps and at the end."""

    name = "progress"

    def __init__(self, total: int, desc: str | None = None, enabled: bool = True, every: int = 100):
        self.total, self.desc, self.enabled, self.every = total, desc, enabled, every
        self._bar = None
        self._shown = 0

    def on_step(self, state: MDState) -> None:
        if not self.enabled or (state.step % self.every and not state.last and state.stop is None):
            return None
        if self._bar is None:
            from tqdm.auto import tqdm

            self._shown = max(state.step - 1, 0)
            self._bar = tqdm(total=self.total, initial=self._shown, desc=self.desc, unit="step", mininterval=1.0)
        if state.step > self._shown:
            self._bar.update(state.step - self._shown)
            self._shown = state.step
        return None

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


# --------------------------------------------------------------------------- the stepping loop


def observer_stride(observer: Observer) -> int:
    """Steps between an observer's actions (``every`` or ``config.every``; 1, every step, when it does
    not say)."""
    every = getattr(observer, "every", None)
    if every is None:
        every = getattr(getattr(observer, "config", None), "every", None)
    return int(every) if isinstance(every, int) and every >= 1 else 1


def notify(observers: Sequence[Observer], state: MDState) -> Stop | None:
    """Call every observer on ``state`` in order; the first :class:`Stop` is kept in ``state.stop``
    (later observers still see it) and returned."""
    for observer in observers:
        stop = observer.on_step(state)
        if stop is not None and state.stop is None:
            state.stop = stop
    return state.stop


def nonfinite_coordinates(atoms: Atoms) -> str | None:
    """``None`` if every position and momentum of ``atoms`` is finite, else which one is not."""
    for label, values in (("position", atoms.positions), ("momentum", atoms.arrays.get("momenta"))):
        if values is None or np.isfinite(values).all():
            continue
        bad = np.argwhere(~np.isfinite(values))
        if len(bad):
            return f"non-finite {label} of atom {bad[0, 0]}"
    return None


class Dynamics:
    """``atoms`` (calculator attached) moved by ``integrator``, observed by ``observers``.

    ``step`` is the number of steps taken; :meth:`run` steps until a target step or a stop.
    The caller sets the initial momenta (:meth:`initialize`) or restores them (:meth:`restore`).
    With ``calculator_errors_stop`` a calculator exception during a step stops the run (monitor
    ``"calculator"``) instead of propagating.
    """

    def __init__(self, atoms: Atoms, integrator: Integrator, rng: np.random.Generator,
                 observers: Sequence[Observer] = (), *, calculator_errors_stop: bool = False):
        self.atoms, self.integrator, self.rng = atoms, integrator, rng
        self.observers = list(observers)
        self.calculator_errors_stop = calculator_errors_stop
        self.step = 0
        self.stop: Stop | None = None
        self.wall_before = 0.0
        self._t0 = time.perf_counter()
        self._dyn = None
        self._step = None  # the integrator's step (ase_steps.lean_step)
        self._strides = sorted({observer_stride(o) for o in self.observers})  # steps with no observer due skip them

    @property
    def time_fs(self) -> float:
        return self.step * self.integrator.timestep_fs

    @property
    def wall_s(self) -> float:
        return self.wall_before + time.perf_counter() - self._t0

    def _dynamics(self):
        """The ASE integrator for the next step (made anew when ``npt``'s barostat comes on)."""
        if self._dyn is None or hasattr(self._dyn, "_barostat") != self.integrator.barostat_on(self.step):
            self._dyn = self.integrator.make(self.atoms, self.rng, self.step)
            self._step = lean_step(self._dyn)
        return self._dyn

    def _fix_com(self) -> None:
        from ase.constraints import FixCom

        if self.integrator.uses_fix_com and not any(isinstance(c, FixCom) for c in self.atoms.constraints):
            self.atoms.set_constraint(list(self.atoms.constraints) + [FixCom()])

    def initialize(self) -> None:
        """Fresh momenta; forces of the start frame (a calculator error here always propagates: it
        is an input error, e.g. an element the model does not know, not an instability); observers
        start and see step 0."""
        self.integrator.initialize_velocities(self.atoms, self.rng)
        self._fix_com()
        self.atoms.get_forces()
        state = self.state(last=False)
        for observer in self.observers:
            observer.start(state)
        self._observe(state)

    def restore(self, checkpoint: dict) -> None:
        """Cell, positions, momenta, step, RNG, integrator state, bath energy and observer states of a
        checkpoint."""
        self._fix_com()
        if checkpoint.get("cell") is not None:
            self.atoms.set_cell(np.asarray(checkpoint["cell"], dtype=float), scale_atoms=False)
        self.atoms.set_positions(np.asarray(checkpoint["positions"], dtype=float), apply_constraint=False)
        self.atoms.set_momenta(np.asarray(checkpoint["momenta"], dtype=float), apply_constraint=False)
        self.rng.bit_generator.state = checkpoint["rng"]
        self.step = int(checkpoint["step"])
        self.wall_before = float(checkpoint["wall_s"])
        self.stop = Stop(**checkpoint["stop"]) if checkpoint["stop"] is not None else None
        if checkpoint.get("bath_energy") is not None and hasattr(self._dynamics(), "transferred_energy"):
            self._dynamics().transferred_energy = float(checkpoint["bath_energy"])
        self.integrator.load_state_dict(self._dynamics(), checkpoint.get("integrator"))
        states = checkpoint["observers"]
        for k, observer in enumerate(self.observers):
            observer.load_state_dict(states.get(f"{k}:{observer.name}", {}))

    def state(self, last: bool) -> MDState:
        return MDState(self.atoms, self.step, self.time_fs, last, self.wall_s, self._dynamics(), self.stop)

    def _observe(self, state: MDState) -> None:
        self.stop = notify(self.observers, state)

    def advance(self, last: bool) -> bool:
        """One step and its observers; ``False`` (and ``stop`` set) if the calculator raised and
        ``calculator_errors_stop``: an exploding model often raises (e.g. a neighbour-list overflow),
        which is an MD failure, recorded as monitor ``"calculator"`` (``"finite"`` when the atoms had
        already left for non-finite positions).
        """
        dyn = self._dynamics()
        try:
            self._step()
        except Exception as exc:
            if not self.calculator_errors_stop:
                raise
            self.step += 1
            self.stop = self._calculator_stop(exc)
            return False
        self.step += 1
        dyn.nsteps = self.step
        if last or any(self.step % every == 0 for every in self._strides):
            self._observe(self.state(last))  # an observer acts only on its strides, the last or a stopping step
        return True

    def _calculator_stop(self, exc: Exception) -> Stop:
        """Why a calculator exception stopped the run: a blow-up (huge forces drove an atom to a
        non-finite position, which the calculator then refused) is the dynamics' failure, recorded as
        monitor ``"finite"``; any other exception as monitor ``"calculator"``."""
        reason = f"{type(exc).__name__}: {exc}"
        blow_up = nonfinite_coordinates(self.atoms)
        if blow_up is not None:
            return Stop("finite", f"{blow_up} (the calculator then raised {reason})")
        return Stop("calculator", reason)

    def run(self, until: int) -> None:
        """Step until step ``until`` or a stop."""
        while self.stop is None and self.step < until:
            self.advance(last=self.step + 1 == until)

    def checkpoint(self, config: dict) -> dict:
        """JSON-serialisable state of the run (see the module docstring)."""
        return {
            "format": CHECKPOINT_FORMAT,
            "config": config,
            "numbers": self.atoms.numbers.tolist(),
            "step": self.step,
            "time_fs": self.time_fs,
            "cell": self.atoms.cell.array.tolist(),
            "positions": self.atoms.positions.tolist(),
            "momenta": self.atoms.get_momenta().tolist(),
            "rng": self.rng.bit_generator.state,
            "bath_energy": self.state(False).bath_energy,
            "integrator": self.integrator.state_dict(self._dynamics()),
            "wall_s": self.wall_s,
            "observers": {f"{k}:{o.name}": o.state_dict() for k, o in enumerate(self.observers)},
            "stop": None if self.stop is None else asdict(self.stop),
        }

    def close(self) -> None:
        for observer in self.observers:
            observer.close()


# --------------------------------------------------------------------------- resumable runs


def fsync_file(path: Path) -> None:
    """Flush ``path``'s written data to disk (nothing if it does not exist)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class CheckpointWriter:
    """Writes a run's checkpoint file off the stepping thread.

    :meth:`write` serialises the state at once (it is the step's), waits for the previous checkpoint
    to land (one in flight; its error, e.g. a full disk, is raised here), then in a worker thread
    flushes ``durable`` files to disk (frames the checkpoint counts), writes the checkpoint atomically
    (:func:`ffpt.fileio.atomic_write_text`: the file, then its folder, flushed) and returns. The
    disk waits (milliseconds each, several per checkpoint) then overlap the next steps instead of
    stalling them; what lands, and in which order, is what a synchronous write would leave.
    """

    def __init__(self, path: Path):
        self.path = path
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ffpt-checkpoint")
        self._pending: Future | None = None

    def write(self, state: dict, durable: Sequence[Path] = ()) -> None:
        text = json.dumps(state, indent=None, default=str)
        self.wait()
        self._pending = self._pool.submit(self._land, text, tuple(durable))

    def _land(self, text: str, durable: tuple[Path, ...]) -> None:
        for path in durable:
            try:
                fsync_file(path)
            except OSError as exc:
                raise located_os_error(exc, path) from None
        atomic_write_text(self.path, text)

    def wait(self) -> None:
        """Until the last checkpoint has landed; raises its error."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def close(self, failing: bool = False) -> None:
        """Land the last checkpoint and stop the worker; with ``failing`` (the run is already raising)
        a write error is dropped so that the first error is the one reported."""
        try:
            self.wait()
        except OSError:
            if not failing:
                raise
        finally:
            self._pool.shutdown()



@dataclass(frozen=True)
class MDResult:
    """Outcome of one MD run; ``failed_at_fs`` and ``reason`` are ``None`` when stable."""

    stable: bool
    simulated_fs: float
    failed_at_fs: float | None
    reason: str | None
    monitor: str | None  # name of the monitor that fired, or "calculator"
    steps: int  # steps integrated
    timestep_fs: float
    n_frames: int
    wall_s: float
    trajectory: str | None
    observed: dict = field(default_factory=dict)  # observer summaries by name, e.g. committee "uncertainty"

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "MDResult":
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def read_checkpoint(out: Path) -> dict | None:
    """The checkpoint of run folder ``out`` (``None`` if there is none)."""
    path = out / CHECKPOINT_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: corrupted checkpoint ({exc}); remove it or use a new output folder") from None
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not an ffpt MD checkpoint (expected format {CHECKPOINT_FORMAT})")
    return data


def same_setting(a, b) -> bool:
    """Two config values agree: equal, or (in nested sections and lists too) two spellings of one path
    (relative and absolute) or two paths of files with the same content."""
    if a == b:
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_setting(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_setting(x, y) for x, y in zip(a, b))
    if isinstance(a, str) and isinstance(b, str):
        try:
            if absolute(a) == absolute(b):
                return True
            return os.path.isfile(a) and os.path.isfile(b) and file_sha256(a) == file_sha256(b)
        except (OSError, ValueError):
            return False
    return False


def check_resumable(out: Path, checkpoint: dict, config: dict, atoms: Atoms, config_name: str) -> None:
    """A run folder resumes only with the same structure and config (``steps`` aside); else ConfigError
    naming the folder and the differing keys."""
    if checkpoint["numbers"] != atoms.numbers.tolist():
        raise ConfigError(f"{out}: checkpoint holds a different structure (atomic numbers differ)")
    saved = checkpoint["config"]
    differ = sorted(k for k in set(saved) | set(config) if k != "steps" and not same_setting(saved.get(k), config.get(k)))
    if differ:
        raise ConfigError(
            f"{out}: cannot resume, config differs from {config_name} in {', '.join(differ)}"
            " (use a new output directory)"
        )


def run(
    atoms: Atoms,
    integrator: Integrator,
    observers: Sequence[Observer],
    out: str | os.PathLike,
    *,
    steps: int,
    seed: int,
    config: dict,
    config_name: str,
    checkpoint_every: int,
    progress: bool = True,
    desc: str | None = None,
) -> MDResult:
    """Run (or resume, or return the finished result of) ``steps`` steps into folder ``out``.

    ``atoms`` carries its calculator; ``config`` (JSON-able) is saved as ``config_name`` (YAML) and in
    the checkpoint, and must match on resume. Writes ``checkpoint.json`` and ``stability.json``.
    """
    import yaml

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config = json.loads(json.dumps(config))  # as it reads back from the checkpoint (tuples -> lists)
    if steps < 0 or checkpoint_every < 1:
        raise ValueError(f"need steps >= 0 and checkpoint_every >= 1 (got {steps}, {checkpoint_every})")
    checkpoint = read_checkpoint(out)
    if checkpoint is not None:
        check_resumable(out, checkpoint, config, atoms, config_name)
        finished = checkpoint["stop"] is not None or checkpoint["step"] >= steps
        if finished and (out / STABILITY_FILE).exists():
            return MDResult.from_dict(json.loads((out / STABILITY_FILE).read_text()))
    atomic_write_text(out / config_name, yaml.safe_dump(config, sort_keys=False))

    observers = list(observers) + [ProgressBar(steps, desc, progress)]
    engine = Dynamics(atoms, integrator, np.random.default_rng(seed), observers, calculator_errors_stop=True)
    writer = CheckpointWriter(out / CHECKPOINT_FILE)

    def save() -> dict:
        state = engine.checkpoint(config)
        writer.write(state, [path for o in observers for path in o.durable_files()])
        return state

    failing = True
    try:
        if checkpoint is None:
            engine.initialize()
            checkpoint = save()
        else:
            engine.restore(checkpoint)
        while engine.stop is None and engine.step < steps:
            if not engine.advance(last=engine.step + 1 == steps):
                checkpoint["stop"] = asdict(engine.stop)  # the failing step cannot be saved: mark the last
                writer.write(checkpoint)
                break
            if engine.stop is not None or engine.step % checkpoint_every == 0 or engine.step == steps:
                checkpoint = save()
        failing = False
    finally:
        try:
            writer.close(failing)
        finally:
            engine.close()

    sinks = [o for o in observers if o.name == "trajectory"]  # a TrajectoryWriter: n_frames, path
    stop, dt = engine.stop, integrator.timestep_fs
    result = MDResult(
        stable=stop is None,
        simulated_fs=engine.step * dt,
        failed_at_fs=engine.step * dt if stop else None,
        reason=stop.reason if stop else None,
        monitor=stop.monitor if stop else None,
        steps=engine.step,
        timestep_fs=dt,
        n_frames=sinks[0].n_frames if sinks else 0,
        wall_s=engine.wall_s,
        trajectory=sinks[0].path.name if sinks else None,
        observed={name: summary for name, summary in ((o.name, o.summary()) for o in observers)
                  if summary is not None},
    )
    atomic_write_json(out / STABILITY_FILE, result.as_dict())
    return result
