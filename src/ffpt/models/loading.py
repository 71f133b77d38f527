"""From files to ASE calculators: an ffpt model file, an exported ``.pt2`` package, a ``mace_run_train``
model file (``.model``, served by MACE's own calculator), or a committee of ffpt model files (a list of
files or a ``committee.json``) or its exported package. :func:`ffpt.load_calculator` is this function."""

from __future__ import annotations

import os
from typing import Sequence

from ase.calculators.calculator import Calculator

from ffpt.models.calculator import GraphCalculator, MLIPCalculator
from ffpt.errors import UserError
from ffpt.models.committee import CommitteeCalculator, ExportedCommittee, is_committee_file, read_committee_file
from ffpt.models.exported import ExportedCalculator, is_package, load_package
from ffpt.models.mace_cli_model import is_mace_cli_model, mace_cli_calculator


def load_calculator(path: str | os.PathLike | Sequence[str | os.PathLike], device: str = "cpu",
                    **kwargs) -> Calculator:
    """The calculator of a model file (``compile=True`` runs it through ``torch.compile``), of an exported
    package (already compiled: ``compile`` is ignored, ``dtype`` refused), of a ``mace_run_train``
    ``.model`` file (MACE's ``MACECalculator`` in the model's float type, or ``dtype``; no ``compile``)
    or of a committee: a list of ffpt model files or a committee file, every member loaded with the
    same arguments, or a committee's exported package (:class:`ExportedCommittee`)."""
    if isinstance(path, (list, tuple)):
        return CommitteeCalculator([_member(member, device, **kwargs) for member in path])
    if is_committee_file(path):
        return CommitteeCalculator([_member(member, device, **kwargs) for member in read_committee_file(path)])
    if is_mace_cli_model(path):
        if kwargs.pop("compile", False):
            raise UserError(f"{path}: a mace_run_train model runs eagerly through MACE's calculator; "
                            "compile applies to ffpt model files")
        return mace_cli_calculator(path, device=device, **kwargs)
    return _one(path, device, **kwargs)


def _member(path: str | os.PathLike, device: str, **kwargs) -> GraphCalculator:
    if is_mace_cli_model(path):
        raise UserError(f"{path}: a mace_run_train model cannot be a committee member (ffpt model files only)")
    member = _one(path, device, **kwargs)
    if isinstance(member, ExportedCommittee):
        raise UserError(f"{path}: an exported committee cannot be a committee member (use it alone)")
    return member


def _one(path: str | os.PathLike, device: str, **kwargs) -> GraphCalculator:
    if is_package(path):
        kwargs.pop("compile", None)  # the package is compiled already
        package = load_package(path)
        kind = ExportedCommittee if package[1].get("committee") else ExportedCalculator
        return kind(path, device=device, package=package, **kwargs)
    return MLIPCalculator.from_file(path, device=device, **kwargs)
