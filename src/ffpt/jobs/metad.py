"""A metadynamics job: validated config -> run (resumable) -> FES and species analysis.

Used by ``ffpt metad`` and by the experiment workflow.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator, model_validator

from ffpt import keys
from ffpt.config import Strict
from ffpt.simulate.config import MonitorConfig, UncertaintyConfig
from ffpt.units import HARTREE, KCAL_PER_MOL, KJ_PER_MOL

if TYPE_CHECKING:
    from ffpt.analysis.fes import BarrierTrace, FesChange

CONFIG_NAME = "metad_config.yaml"


class WallConfig(Strict):
    """Upper wall ``kappa (d - at)^2`` on the distance of an atom pair (e.g. keep a fragment near)."""

    pair: str = Field(description="atom-pair label, e.g. 'O1_H1'")
    at: float = Field(gt=0, description="wall position (A)")
    kappa: float = Field(10.0, gt=0, description="force constant (eV/A^2)")


class MetadConfig(Strict):
    """One metadynamics run. Units: fs, K, A, 1/fs; hill height in kJ/mol (as PLUMED's HEIGHT)."""

    calculator: str | list[str] | None = Field(
        None, description="model file, teacher name, or a committee: a list of model files or a committee.json")
    teacher_options: dict[str, Any] = Field(default_factory=dict, description="options of a teacher calculator")
    structure: Path | None = Field(None, description="starting structure (any ASE-readable file)")
    structure_index: int = 0
    channel: str | None = Field(None, description="reaction channel id in 'reactions' (CVs, multiplicity)")
    reactions: Path | None = Field(None, description="reactions.json of the hydrogen-combustion data")
    cv: list[str] | None = Field(None, description="per CV: comma-separated pair labels summed, e.g. 'O1_H2,O1_H1'")
    r0: list[float] | None = Field(None, description="per CV: switching-function r0 (A)")
    nn: int = Field(6, ge=1, description="switching-function exponent n")
    mm: int = Field(0, ge=0, description="switching-function exponent m (0: 2n)")
    d0: float = Field(0.0, ge=0, description="switching-function d0 (A)")
    sigma: list[float] = Field([0.05], description="Gaussian widths, one per CV or one for all (CV units)")
    height: float = Field(1.0, gt=0, description="initial hill height (kJ/mol)")
    pace: int = Field(100, ge=1, description="MD steps between hills")
    biasfactor: float = Field(10.0, gt=1)
    temperature_K: float = Field(300.0, gt=0)
    timestep_fs: float = Field(0.5, gt=0)
    friction_per_fs: float = Field(0.01, gt=0)
    steps: int = Field(10000, ge=1)
    seed: int = Field(0, ge=0)
    colvar_stride: int = Field(10, ge=1)
    trajectory_stride: int = Field(100, ge=1)
    checkpoint_every: int = Field(1000, ge=1)
    check_every: int = Field(10, ge=1, description="MD steps between stability checks")
    monitors: MonitorConfig = Field(
        default_factory=MonitorConfig,
        description="stability monitors (default: non-finite forces, atoms closer than 0.5 A); a failure stops the run",
    )
    uncertainty: UncertaintyConfig | None = Field(
        None, description="committee disagreement record and thresholds (default: recorded for a committee)")
    charge: int | None = Field(None, description="total charge (info['charge'])")
    multiplicity: int | None = Field(None, ge=1, description="spin multiplicity (default: the channel's)")
    upper_walls: list[WallConfig] = Field(default_factory=list)
    fes_bins: int = Field(101, ge=5)
    fes_estimates: int = Field(
        5, ge=2, description="FES estimates at equally spaced times (convergence, barrier history): the last change "
                             "spans the last 1/fes_estimates of the run")
    fes_tolerance_kj_mol: float = Field(
        2.0, gt=0, description="FES convergence tolerance (kJ/mol): the run counts as converged when the RMS change "
                               "of the FES between the last two estimates (aligned by their mean) is at most this")
    fes_region_kj_mol: float | None = Field(
        None, gt=0, description="the FES change is measured where the final FES is at most this (kJ/mol above its "
                                "minimum); default: the top of the region the hills visited")
    allowed_species: list[str] | None = Field(None, description="Hill formulas; default: the channel's species")

    @field_validator("channel", mode="before")
    @classmethod
    def _channel_id(cls, value):
        return f"{value:02d}" if isinstance(value, int) else value  # YAML reads 01 as the integer 1

    @model_validator(mode="after")
    def _cv_source(self) -> "MetadConfig":
        if self.channel is not None and self.cv is not None:
            raise ValueError("give either 'channel' or 'cv', not both")
        if self.channel is not None and self.reactions is None:
            raise ValueError("'channel' needs 'reactions' (path of reactions.json)")
        if self.cv is not None and (self.r0 is None or len(self.r0) != len(self.cv)):
            raise ValueError(f"'r0' needs one value per 'cv' ({len(self.cv)}), got {self.r0}")
        return self


def prepare(config: MetadConfig):
    """Starting atoms, CVs, walls, run parameters and the channel's reaction (or None) of a config."""
    from ffpt.config import ConfigError
    from ffpt.data.io import read_structure
    from ffpt.simulate.cvs import Distance, channel_cvs, coordination_from_labels, pair_from_label
    from ffpt.systems.h2combustion import load_channel
    from ffpt.simulate.metad import MetadParameters, Wall

    if config.calculator is None or config.structure is None:
        raise ConfigError("'calculator' and 'structure' are required (flags or config keys)")
    atoms = read_structure(config.structure, config.structure_index)
    kw = dict(n=config.nn, m=config.mm)
    reaction = None
    if config.channel is not None:
        channel = load_channel(config.reactions, config.channel)
        cvs = channel_cvs(channel, atoms, **kw)
        atoms.info[keys.SPIN] = channel.multiplicity
        reaction = channel.reaction
    elif config.cv is not None:
        cvs = [coordination_from_labels(text.split(","), atoms, r0, d0=config.d0, name=f"cn{k + 1}", **kw)
               for k, (text, r0) in enumerate(zip(config.cv, config.r0))]
    else:
        raise ValueError("give 'channel' (with 'reactions') or 'cv' with 'r0'")
    if config.multiplicity is not None:
        atoms.info[keys.SPIN] = config.multiplicity
    if config.charge is not None:
        atoms.info[keys.CHARGE] = config.charge
    sigma = config.sigma * len(cvs) if len(config.sigma) == 1 else config.sigma
    if len(sigma) != len(cvs):
        raise ValueError(f"key 'sigma': {len(config.sigma)} values for {len(cvs)} CVs")
    walls = [Wall(Distance(*pair_from_label(w.pair, atoms), name=f"d_{w.pair}"), w.at, w.kappa)
             for w in config.upper_walls]
    params = MetadParameters(
        steps=config.steps, temperature=config.temperature_K, sigma=tuple(sigma),
        height=config.height * KJ_PER_MOL, pace=config.pace, biasfactor=config.biasfactor,
        timestep=config.timestep_fs, friction=config.friction_per_fs, seed=config.seed,
        colvar_stride=config.colvar_stride, trajectory_stride=config.trajectory_stride,
        checkpoint_every=config.checkpoint_every, check_every=config.check_every,
    )
    return atoms, cvs, walls, params, reaction


def barriers(config: MetadConfig, cvs, fes, history, calculator) -> dict | None:
    """The run's FES barrier next to the reference and model barriers of the channel's stationary points.

    Needs ``reactant_NN.xyz`` and ``product_NN.xyz`` next to the TS ``structure`` (the combustion
    data's geometries); ``cv_points`` holds the CV values of all three. FES barrier: lowest saddle between the reactant's and the product's CV
    points (free energy at the run's temperature, kcal/mol), for the final surface and for each
    earlier estimate (its spread shows convergence). Reference: E(TS) - E(reactant) from the files'
    energies (the IRC maximum); model: the same from single points of ``calculator``.
    """
    import ase.io
    from ffpt.analysis.fes import barrier
    from ffpt.systems.h2combustion import KINDS, stationary_energy_hartree, stationary_point_path

    if config.channel is None:
        return None
    folder = Path(config.structure).parent
    paths = {kind: stationary_point_path(folder, kind, config.channel) for kind in KINDS}
    if not all(p.exists() for p in paths.values()):
        return None
    geometries = {kind: ase.io.read(p) for kind, p in paths.items()}
    points = {kind: [float(cv.compute(geometries[kind])[0]) for cv in cvs] for kind in KINDS}
    out: dict[str, Any] = {"cv_points": points, "temperature_K": config.temperature_K}
    hartree = {kind: stationary_energy_hartree(p) for kind, p in paths.items()}
    if None not in hartree.values():
        out["reference_barrier_kcal_per_mol"] = (hartree["TS"] - hartree["reactant"]) * HARTREE / KCAL_PER_MOL
        out["reference_reverse_barrier_kcal_per_mol"] = (hartree["TS"] - hartree["product"]) * HARTREE / KCAL_PER_MOL
    energies = {}
    for kind, atoms in geometries.items():
        atoms.info[keys.SPIN] = config.multiplicity or atoms.info.get(keys.SPIN)
        atoms.calc = calculator
        energies[kind] = atoms.get_potential_energy()
    out["model_barrier_kcal_per_mol"] = (energies["TS"] - energies["reactant"]) / KCAL_PER_MOL
    out["model_reverse_barrier_kcal_per_mol"] = (energies["TS"] - energies["product"]) / KCAL_PER_MOL
    estimates = []
    for surface in [*history, fes]:
        try:
            b = barrier(surface, points["reactant"], points["product"])
            estimates.append({"time_fs": surface.time, "forward": b.forward / KCAL_PER_MOL, "backward": b.backward / KCAL_PER_MOL})
        except ValueError as exc:  # a stationary point in an unsampled region
            estimates.append({"time_fs": surface.time, "error": str(exc)})
    out["fes_barrier_history_kcal_per_mol"] = estimates
    out["profile"] = reaction_profile(fes, points, config.temperature_K)
    final = estimates[-1]
    out["fes_barrier_kcal_per_mol"] = final.get("forward")
    out["fes_reverse_barrier_kcal_per_mol"] = final.get("backward")
    return out


def reaction_profile(fes, points: dict, temperature: float) -> dict:
    """The final FES along the straight line from the reactant's CV point (lambda 0) to the product's
    (1), Boltzmann-integrated across it (:func:`~ffpt.analysis.fes.path_profile`; kJ/mol, minimum 0,
    None where no grid point falls), with the TS's lambda: runs and arms on one axis. None when the
    CVs put reactant and product on one point."""
    import numpy as np

    from ffpt.analysis.fes import path_profile

    start, end, ts = (np.asarray(points[k], float) for k in ("reactant", "product", "TS"))
    if np.allclose(start, end):  # the CVs do not tell reactant from product
        return None
    profile = path_profile(fes, start, end, temperature)
    values = profile.values / KJ_PER_MOL
    return {"lambda": profile.axes[0].round(6).tolist(),
            "free_energy_kj_mol": [None if not np.isfinite(v) else float(v) for v in values],
            "ts_lambda": float((ts - start) @ (end - start) / ((end - start) @ (end - start))),
            "temperature_K": temperature}


def barrier_trace(found: dict) -> BarrierTrace:
    """The FES barrier estimates of :func:`barriers` against simulated time, with the reference (IRC)
    barrier, as an :class:`~ffpt.analysis.fes.BarrierTrace` (eV; NaN where an estimate found no path)."""
    from ffpt.analysis.fes import BarrierTrace

    history = found["fes_barrier_history_kcal_per_mol"]
    reference = found.get("reference_barrier_kcal_per_mol")
    return BarrierTrace(time=tuple(e["time_fs"] for e in history),
                        barrier=tuple(e.get("forward", float("nan")) * KCAL_PER_MOL for e in history),
                        reference=None if reference is None else reference * KCAL_PER_MOL)


def calculator_name(calculator: str | list[str] | None) -> str:
    """Short name of a calculator setting for titles: a file's stem, a teacher's name, a committee's size."""
    if isinstance(calculator, list):
        return f"committee of {len(calculator)}"
    return Path(str(calculator)).stem


def fes_title(config: MetadConfig, name: str, reaction: str | None, n_hills: int) -> str:
    """Title of the FES figure: who ran it, the channel and reaction, biasfactor, temperature, hills."""
    if config.channel is not None:
        where = f"channel {config.channel} ({reaction})"
    else:
        where = "CVs " + ", ".join(config.cv or ())
    return f"{name}, {where}: biasfactor {config.biasfactor:g}, {config.temperature_K:g} K, {n_hills} hills"


def plot_run_fes(path: Path, config: MetadConfig, fes, history, hills, found: dict | None, name: str | None,
                 reaction: str | None, change: FesChange | None = None) -> Path:
    """The run's FES figure in kcal/mol, titled with ``name`` (default the calculator's), the colour
    scale clipped to the visited region (:func:`~ffpt.analysis.fes.visited_level` of the hill
    centres), with ``change`` the FES change against simulated time and the tolerance and, with the
    :func:`barriers` ``found``, the reactant, TS and product marked and the barrier estimates
    against simulated time next to the reference barrier."""
    from ffpt.analysis.fes import plot_fes, visited_level

    return plot_fes(fes, path, history=history, unit="kcal/mol",
                    title=fes_title(config, name or calculator_name(config.calculator), reaction, len(hills)),
                    max_level=visited_level(fes, hills.center) / KCAL_PER_MOL,
                    marks=None if found is None else found["cv_points"],
                    barriers=None if found is None else barrier_trace(found),
                    change=change, tolerance=config.fes_tolerance_kj_mol * KJ_PER_MOL)


def convergence_record(change: FesChange, tolerance_kj_mol: float) -> dict:
    """A :class:`~ffpt.analysis.fes.FesChange` for summary.json (kJ/mol, fs) with its verdict: the
    run is converged when the last RMS change is at most ``tolerance_kj_mol``."""
    return {"time_fs": list(change.time),
            "rms_change_kj_mol": [x / KJ_PER_MOL for x in change.rms],
            "max_change_kj_mol": [x / KJ_PER_MOL for x in change.max],
            "region_kj_mol": change.level / KJ_PER_MOL, "region_points": change.region_points,
            "last_interval_fs": change.interval, "tolerance_kj_mol": tolerance_kj_mol,
            "criterion": "RMS change between the last two FES estimates, aligned by their mean",
            "converged": change.converged(tolerance_kj_mol * KJ_PER_MOL)}


def analyse(out: Path, result, config: MetadConfig, reaction: str | None, cvs=None, calculator=None,
            name: str | None = None) -> dict:
    """FES (file + plot, with convergence), species (plot, outcome) and, for a combustion channel
    with its stationary geometries, barriers of a finished run (figure: :func:`plot_run_fes`)."""
    import ase.io

    from ffpt.analysis.fes import fes_change, fes_convergence, fes_from_hills, visited_level, write_fes
    from ffpt.analysis.species import plot_species
    from ffpt.observables.species import identify_outcome, species_timeline
    from ffpt.systems.h2combustion import COMBUSTION_SPECIES, parse_reaction

    hills = result.hills
    stability = {k: getattr(result.stability, k) for k in ("stable", "simulated_fs", "failed_at_fs", "reason", "monitor")}
    history = fes_convergence(hills, n_estimates=config.fes_estimates, bins=config.fes_bins)
    fes = fes_from_hills(hills, bins=config.fes_bins)
    write_fes(out / "fes.dat", fes)
    level = visited_level(fes, hills.center) if config.fes_region_kj_mol is None \
        else config.fes_region_kj_mol * KJ_PER_MOL
    change = fes_change(history, level)
    found = barriers(config, cvs, fes, history[:-1], calculator) if cvs is not None and calculator is not None else None
    plot_run_fes(out / "fes.png", config, fes, history[:-1], hills, found, name, reaction, change)
    frames = ase.io.read(result.trajectory_file, ":", format="extxyz")
    timeline = species_timeline(frames)
    summary: dict[str, Any] = {"steps": result.steps, "hills": len(hills), "stability": stability,
                               "final_species": dict(timeline.frame_species(len(frames) - 1)),
                               "fes_convergence": convergence_record(change, config.fes_tolerance_kj_mol)}
    allowed = config.allowed_species
    if reaction is not None:
        parsed = parse_reaction(reaction)
        outcome = identify_outcome(timeline, parsed, extra_allowed=allowed or ())
        summary.update(outcome=outcome.label, final_species=dict(outcome.final_species),
                       unphysical_frames=outcome.unphysical_frames)
        allowed = sorted(parsed.allowed | set(allowed or ()))
    allowed = allowed or sorted(COMBUSTION_SPECIES)
    unphysical = timeline.unphysical(allowed)
    summary.setdefault("unphysical_frames", int(unphysical.sum()))
    summary["ends_unphysical"] = bool(unphysical[-1])  # the last frame holds a species outside the allowed
    plot_species(timeline, out / "species.png", unphysical=unphysical, title=reaction)
    if found is not None:
        summary["barriers"] = found
    return summary


def run_metad_job(
    config: MetadConfig, out: str | Path, device: str = "cpu", progress: bool = True, compile: bool = False,
    name: str | None = None,
) -> dict:
    """Run (or resume) ``config`` into ``out``; writes and returns the summary (``summary.json``).
    ``compile``: run a model file through ``torch.compile`` (see :func:`ffpt.simulate.calculators.resolve`);
    ``name``: who runs it in figure titles, e.g. an experiment's arm (default the calculator's name).

    A folder holding a run of a different config (``steps`` aside) is refused with a ConfigError.
    """
    from ffpt.fileio import atomic_write_json
    from ffpt.simulate.calculators import resolve
    from ffpt.simulate.metad import run_metadynamics

    out = Path(out)
    atoms, cvs, walls, params, reaction = prepare(config)
    calculator = resolve(config.calculator, device, config.teacher_options, compile=compile)
    result = run_metadynamics(atoms, calculator, cvs, params, out, walls=walls, monitors=config.monitors,
                              uncertainty=config.uncertainty,
                              config=config.model_dump(mode="json"), config_name=CONFIG_NAME, progress=progress)
    summary = analyse(out, result, config, reaction, cvs, calculator, name)
    atomic_write_json(out / "summary.json", summary, indent=1)
    return summary
