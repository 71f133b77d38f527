"""ffpt: force-field pre-training and ab initio fine-tuning of machine-learned interatomic potentials."""

import os
from typing import Sequence

__version__ = "0.1.0"


def load_calculator(path: "str | os.PathLike | Sequence[str | os.PathLike]", device: str = "cpu", **kwargs):
    """Return the ASE calculator of an ffpt model file (:mod:`ffpt.models.calculator`; ``compile=True``
    runs it through ``torch.compile``), of an exported ``.pt2`` package (``ffpt export``,
    :mod:`ffpt.models.exported`; already compiled, takes no ``dtype`` or ``compile``), or of a
    committee: a list of such files or a committee file ``committee.json``
    (:mod:`ffpt.models.committee`; ``results`` then also hold ``energy_std`` and ``forces_std``)."""
    from ffpt.models.loading import load_calculator as load

    return load(path, device=device, **kwargs)


__all__ = ["__version__", "load_calculator"]
