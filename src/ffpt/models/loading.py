"""From files to ASE calculators: an ffpt model file, an exported ``.pt2`` package, or a committee of
them (a list of files or a ``committee.json``). :func:`ffpt.load_calculator` is this function."""

from __future__ import annotations

import os
from typing import Sequence

from ffpt.models.calculator import GraphCalculator, MLIPCalculator
from ffpt.models.committee import CommitteeCalculator, is_committee_file, read_committee_file
from ffpt.models.exported import ExportedCalculator, is_package


def load_calculator(path: str | os.PathLike | Sequence[str | os.PathLike], device: str = "cpu",
                    **kwargs) -> GraphCalculator:
    """The calculator of a model file (``compile=True`` runs it through ``torch.compile``), of an exported
    package (already compiled: ``compile`` is ignored, ``dtype`` refused) or of a committee: a list of
    such files or a committee file, every member loaded with the same arguments."""
    if isinstance(path, (list, tuple)):
        return CommitteeCalculator([_one(member, device, **kwargs) for member in path])
    if is_committee_file(path):
        return CommitteeCalculator([_one(member, device, **kwargs) for member in read_committee_file(path)])
    return _one(path, device, **kwargs)


def _one(path: str | os.PathLike, device: str, **kwargs) -> GraphCalculator:
    if is_package(path):
        kwargs.pop("compile", None)  # the package is compiled already
        return ExportedCalculator(path, device=device, **kwargs)
    return MLIPCalculator.from_file(path, device=device, **kwargs)
