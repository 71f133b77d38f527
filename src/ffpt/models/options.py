"""Typed ``model.options`` per architecture: what each architecture's constructor accepts beyond the
common hyper-parameters (cutoff, n_features, n_layers, n_basis).

An option another architecture has but this one cannot honour (spin input or the ZBL prior for MACE)
is an error naming the key, not silently dropped. Pure pydantic (and ASE's element table): no torch import.
"""

from __future__ import annotations

from ase.data import chemical_symbols
from pydantic import Field, field_validator, model_validator

from ffpt.config import Strict


class NewtonNetOptions(Strict):
    """Options of :class:`ffpt.models.newtonnet.NewtonNet`."""

    spin_states: int = Field(0, ge=0, description="highest spin multiplicity as input (0: no spin input)")
    zbl: bool = Field(False, description="add the ZBL core repulsion prior")
    zbl_radius_scale: float | dict[str, float] = Field(
        0.75,
        description="ZBL switched off at s_i R_i + s_j R_j (R: covalent radii): one s for every element, "
        "or s per element symbol (elements not named keep 0.75)",
    )

    zbl_exclusive_core: bool = Field(
        False, description="the network's messages between two atoms fade out from the prior's range b to b/2 (needs zbl)"
    )

    @model_validator(mode="after")
    def _core_needs_prior(self):
        if self.zbl_exclusive_core and not self.zbl:
            raise ValueError("zbl_exclusive_core needs zbl: true (the core it leaves to the prior would have no prior)")
        return self

    @field_validator("zbl_radius_scale")
    @classmethod
    def _positive_per_known_element(cls, value):
        scales = value if isinstance(value, dict) else {"": value}
        for symbol, scale in scales.items():
            if symbol and symbol not in chemical_symbols[1:]:
                raise ValueError(f"'{symbol}' is not an element symbol")
            if scale <= 0:
                raise ValueError(f"{symbol + ': ' if symbol else ''}the scale must be > 0, got {scale}")
        return value


class MACEOptions(Strict):
    """Options of :class:`ffpt.models.mace.MACEPotential` (MACE's own names; see that module)."""

    max_ell: int = Field(3, ge=0)
    max_L: int = Field(1, ge=0)
    correlation: int = Field(3, ge=1)
    radial_mlp: list[int] = Field([64, 64, 64], min_length=1)
    mlp_irreps: int = Field(16, ge=1)
    num_polynomial_cutoff: int = Field(5, ge=1)
    residual_first: bool = False  # mace_run_train --model=MACE: the first interaction has no residual path
    # options of other architectures that MACE cannot honour: given, they are errors
    spin_states: int | None = Field(None, exclude=True)
    zbl: bool | None = Field(None, exclude=True)
    zbl_radius_scale: float | dict | None = Field(None, exclude=True)
    zbl_exclusive_core: bool | None = Field(None, exclude=True)

    @field_validator("spin_states")
    @classmethod
    def _no_spin(cls, value):
        if value:
            raise ValueError("architecture 'mace' has no spin input (use newtonnet for several spin states)")
        return None

    @field_validator("zbl", "zbl_radius_scale", "zbl_exclusive_core")
    @classmethod
    def _no_zbl(cls, value):
        if value:
            raise ValueError("architecture 'mace' has no ZBL repulsion prior (newtonnet has)")
        return None


OPTIONS: dict[str, type[Strict]] = {"newtonnet": NewtonNetOptions, "mace": MACEOptions}


def validate_options(architecture: str, options: dict) -> dict:
    """``options`` checked against ``architecture``'s options model; returns the given keys only
    (constructor defaults stay the architecture's own)."""
    if architecture not in OPTIONS:
        raise ValueError(f"unknown architecture '{architecture}'; known: {', '.join(sorted(OPTIONS))}")
    return OPTIONS[architecture].model_validate(options).model_dump(exclude_unset=True, exclude_none=True)
