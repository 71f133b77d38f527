"""Radial basis and smooth cutoff envelope."""

from __future__ import annotations

import math

import torch
from torch import nn


class BesselBasis(nn.Module):
    """sqrt(2/rc) sin(n pi r / rc) / r, n = 1..n_basis; r in A."""

    def __init__(self, cutoff: float, n_basis: int = 16):
        super().__init__()
        self.cutoff = float(cutoff)
        self.register_buffer("frequencies", math.pi * torch.arange(1, n_basis + 1) / self.cutoff)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        r = r.unsqueeze(-1)
        return math.sqrt(2.0 / self.cutoff) * torch.sin(self.frequencies * r) / r


def polynomial_envelope(x: torch.Tensor, p: int = 6) -> torch.Tensor:
    """1 at x=0, 0 for x >= 1, with p continuous derivatives at x=1 (DimeNet form)."""
    value = 1.0 - (p + 1) * (p + 2) / 2 * x**p + p * (p + 2) * x ** (p + 1) - p * (p + 1) / 2 * x ** (p + 2)
    return value * (x < 1.0)


class PolynomialEnvelope(nn.Module):
    """Smooth cutoff: 1 at r=0, goes to 0 at rc with p continuous derivatives (DimeNet form)."""

    def __init__(self, cutoff: float, p: int = 6):
        super().__init__()
        self.cutoff = float(cutoff)
        self.p = p

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        return polynomial_envelope(r / self.cutoff, self.p)
