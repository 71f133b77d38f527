"""Gaussian hills of well-tempered metadynamics and PLUMED's HILLS file format.

In memory (:class:`Hills`) everything is in ffpt units: time in fs, CV values and widths in the
CV's ffpt unit (A or dimensionless), heights in eV as deposited (already well-tempered).

On disk the file is what PLUMED writes and reads (``sum_hills``, ``METAD RESTART``)::

    #! FIELDS time cn1 cn2 sigma_cn1 sigma_cn2 height biasf
    #! SET multivariate false
    #! SET kerneltype gaussian
    <time ps> <cv...> <sigma...> <height kJ/mol> <biasf>

with time in ps, CVs in PLUMED units (lengths in nm: ffpt value * ``scales``) and, as in PLUMED,
the stored height is the deposited height times gamma/(gamma-1), so that the sum of the stored
hills is directly minus the free energy.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ffpt.errors import UserError
from ffpt.fileio import atomic_write_text
from ffpt.units import KJ_PER_MOL

FS_PER_PS = 1000.0
_CHUNK = 2_000_000  # max. elements of a (points x hills x dims) block when summing hills


class HillsError(UserError):
    """A malformed or incompatible HILLS file; the message names the file and line."""


@dataclass
class Hills:
    """Deposited Gaussians: ``V(s) = sum_k h_k exp(-sum_d (s_d - c_kd)^2 / (2 sigma_kd^2))``."""

    names: tuple[str, ...]
    biasfactor: float  # gamma > 1
    scales: np.ndarray | None = None  # PLUMED unit per ffpt unit, one per CV (default 1)
    time: np.ndarray | None = None  # fs, (n,)
    center: np.ndarray | None = None  # (n, d)
    sigma: np.ndarray | None = None  # (n, d)
    height: np.ndarray | None = None  # eV, (n,)

    def __post_init__(self):
        d = len(self.names)
        if d == 0:
            raise HillsError("hills need at least one CV name")
        if not self.biasfactor > 1.0 or not np.isfinite(self.biasfactor):
            raise HillsError(f"biasfactor must be finite and > 1, got {self.biasfactor}")
        self.scales = np.ones(d) if self.scales is None else np.asarray(self.scales, float).reshape(d)
        self.time = np.zeros(0) if self.time is None else np.asarray(self.time, float).reshape(-1)
        n = len(self.time)
        self.center = np.zeros((0, d)) if self.center is None else np.asarray(self.center, float).reshape(n, d)
        self.sigma = np.zeros((0, d)) if self.sigma is None else np.asarray(self.sigma, float).reshape(n, d)
        self.height = np.zeros(0) if self.height is None else np.asarray(self.height, float).reshape(n)

    @property
    def ndim(self) -> int:
        return len(self.names)

    def __len__(self) -> int:
        return len(self.time)

    def add(self, time: float, center, sigma, height: float) -> None:
        """Append one hill (time fs, center and sigma in CV units, height eV)."""
        self.time = np.append(self.time, float(time))
        self.center = np.vstack([self.center, np.asarray(center, float).reshape(1, self.ndim)])
        self.sigma = np.vstack([self.sigma, np.asarray(sigma, float).reshape(1, self.ndim)])
        self.height = np.append(self.height, float(height))

    def upto(self, time: float) -> Hills:
        """The hills deposited at times <= ``time`` (fs)."""
        keep = self.time <= time + 1e-6
        return Hills(self.names, self.biasfactor, self.scales, self.time[keep], self.center[keep],
                     self.sigma[keep], self.height[keep])

    def evaluate(self, points) -> tuple[np.ndarray, np.ndarray]:
        """Bias V (eV) and gradient dV/ds at ``points`` of shape (p, d) or (d,).

        Returns arrays of shapes (p,) and (p, d) (or a float and (d,) for one point).
        """
        pts = np.asarray(points, float)
        single = pts.ndim == 1
        pts = pts.reshape(-1, self.ndim)
        value = np.zeros(len(pts))
        grad = np.zeros_like(pts)
        if len(self):
            step = max(1, _CHUNK // (len(self) * self.ndim))
            for a in range(0, len(pts), step):
                z = (pts[a : a + step, None, :] - self.center[None]) / self.sigma[None]
                g = self.height[None] * np.exp(-0.5 * np.sum(z * z, axis=2))
                value[a : a + step] = g.sum(axis=1)
                grad[a : a + step] = -np.einsum("ph,phd->pd", g, z / self.sigma[None])
        if single:
            return float(value[0]), grad[0]
        return value, grad

    def free_energy_factor(self) -> float:
        """gamma/(gamma-1): F(s) = -gamma/(gamma-1) V(s) + const for well-tempered metadynamics."""
        return self.biasfactor / (self.biasfactor - 1.0)


def format_header(names) -> str:
    names = list(names)
    fields = ["time", *names, *(f"sigma_{n}" for n in names), "height", "biasf"]
    return f"#! FIELDS {' '.join(fields)}\n#! SET multivariate false\n#! SET kerneltype gaussian\n"


def format_hill(hills: Hills, k: int) -> str:
    """One HILLS line (PLUMED units) for hill ``k``."""
    values = [hills.time[k] / FS_PER_PS, *(hills.center[k] * hills.scales), *(hills.sigma[k] * hills.scales),
              hills.height[k] * hills.free_energy_factor() / KJ_PER_MOL, hills.biasfactor]
    return " ".join(f"{v:.10g}" for v in values) + "\n"


def write_hills(path: str | os.PathLike, hills: Hills) -> Path:
    """Write all hills to ``path`` atomically."""
    return atomic_write_text(path, format_header(hills.names) + "".join(format_hill(hills, k) for k in range(len(hills))))


def read_hills(path: str | os.PathLike, scales=None, *, drop_truncated: bool = False) -> Hills:
    """Read a PLUMED HILLS file into ffpt units (``scales``: PLUMED unit per ffpt unit per CV).

    Repeated ``#! FIELDS`` headers (restarted runs) must name the same fields. With
    ``drop_truncated`` a last line without newline (a run killed mid-write) is ignored.
    """
    path = Path(path)
    if not path.exists():
        raise HillsError(f"{path}: no such HILLS file")
    lines = path.read_text().splitlines(keepends=True)
    if drop_truncated and lines and not lines[-1].endswith("\n"):
        lines = lines[:-1]
    fields: list[str] | None = None
    rows: list[list[float]] = []
    for lineno, line in enumerate(lines, start=1):
        words = line.split()
        if not words:
            continue
        if words[0] == "#!" and len(words) > 1 and words[1] == "FIELDS":
            if fields is not None and words[2:] != fields:
                raise HillsError(f"{path}:{lineno}: FIELDS {words[2:]} differ from earlier {fields}")
            fields = words[2:]
            continue
        if words[0].startswith("#"):
            continue
        if fields is None:
            raise HillsError(f"{path}:{lineno}: data before the '#! FIELDS' header")
        if len(words) != len(fields):
            raise HillsError(f"{path}:{lineno}: {len(words)} values, header has {len(fields)} fields")
        try:
            rows.append([float(w) for w in words])
        except ValueError as exc:
            raise HillsError(f"{path}:{lineno}: not a number ({exc})") from exc
    if fields is None:
        raise HillsError(f"{path}: no '#! FIELDS' header")
    sigmas = [f for f in fields if f.startswith("sigma_")]
    names = tuple(s[len("sigma_"):] for s in sigmas)
    expected = ["time", *names, *sigmas, "height", "biasf"]
    if fields != expected:
        raise HillsError(f"{path}: fields {fields} are not '{' '.join(expected)}' (multivariate hills unsupported)")
    data = np.asarray(rows, float).reshape(-1, len(fields))
    d = len(names)
    scales = np.ones(d) if scales is None else np.asarray(scales, float).reshape(-1)
    if len(scales) != d:
        raise HillsError(f"{path}: {d} CVs {names} but {len(scales)} unit scales given")
    biasf = data[:, -1]
    if len(data) == 0:
        raise HillsError(f"{path}: no hills")
    if np.ptp(biasf) > 1e-9 * biasf[0] or not biasf[0] > 1:
        raise HillsError(f"{path}: biasf column must be one constant > 1, found {np.unique(biasf)}")
    gamma = float(biasf[0])
    return Hills(
        names=names,
        biasfactor=gamma,
        scales=scales,
        time=data[:, 0] * FS_PER_PS,
        center=data[:, 1 : 1 + d] / scales,
        sigma=data[:, 1 + d : 1 + 2 * d] / scales,
        height=data[:, -2] * KJ_PER_MOL * (gamma - 1.0) / gamma,
    )
