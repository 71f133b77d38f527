"""Model files written by MACE's own trainer (``mace_run_train``: ``NAME.model``, a ``torch.save`` pickle of
a ``mace.modules`` model), served by MACE's own ASE calculator with ffpt's frame checks.

Such a file is recognised by its ``.model`` suffix and by the class its pickle names first (read off
the pickle without running it): ``mace.modules.models.MACE`` or ``ScaleShiftMACE``. Loading it runs
the pickle (as MACE's calculator does): load only files you trained or trust.
"""

from __future__ import annotations

import os
import pickletools
import warnings
import zipfile
from pathlib import Path

from ase.calculators.calculator import all_changes

from ffpt.errors import UserError
from ffpt.models.calculator import check_structure

SUFFIX = ".model"
MACE_MODELS = "mace.modules.models."
TORCHSCRIPT = "__torch__."  # mace_run_train's NAME_compiled.model


def is_mace_cli_model(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a ``mace_run_train`` model file (by its ``.model`` suffix; the content is
    checked by :func:`check_mace_cli_model`)."""
    return not isinstance(path, (list, tuple)) and str(path).lower().endswith(SUFFIX)


def pickled_class(path: str | os.PathLike) -> str | None:
    """``module.Class`` of the object a ``torch.save`` archive holds, read off its pickle's first global
    without unpickling; ``None`` when the file is not such an archive."""
    try:
        with zipfile.ZipFile(path) as archive:
            name = next((n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1), None)
            if name is None:
                return None
            strings: list[str] = []
            with archive.open(name) as fh:
                for op, arg, _ in pickletools.genops(fh):
                    if op.name == "GLOBAL":
                        return str(arg).replace(" ", ".", 1)
                    if op.name == "STACK_GLOBAL" and len(strings) >= 2:
                        return f"{strings[-2]}.{strings[-1]}"
                    if isinstance(arg, str):
                        strings.append(arg)
    except (zipfile.BadZipFile, OSError, ValueError):
        return None
    return None


def check_mace_cli_model(path: str | os.PathLike) -> None:
    """A :class:`UserError` naming ``path`` unless it is a ``mace_run_train`` model file."""
    if not Path(path).is_file():
        raise UserError(f"{path}: no such model file")
    found = pickled_class(path)
    if found is not None and found.startswith(TORCHSCRIPT + MACE_MODELS):
        raise UserError(f"{path}: a TorchScript export of a MACE model (mace_run_train's *_compiled.model); "
                        "give the .model file next to it")
    if found is None or not found.startswith(MACE_MODELS):
        held = "not a torch.save archive" if found is None else f"holds {found}"
        raise UserError(f"{path}: not a mace_run_train model file ({held}; expected a torch.save pickle of a "
                        "mace.modules model)")


def mace_cli_calculator(path: str | os.PathLike, device: str = "cpu", dtype=None):
    """MACE's ASE calculator (``mace.calculators.MACECalculator``) of the ``mace_run_train`` model file
    ``path`` in the model's own float type (or ``dtype``, a torch dtype), with ffpt's frame checks:
    an element the model was not trained on is a :class:`UserError` naming the atom."""
    import torch

    from ffpt.models.mace import INSTALL_HINT, import_mace

    check_mace_cli_model(path)
    try:
        import_mace()
        with warnings.catch_warnings():  # TorchScript chatter of e3nn's code generation
            warnings.simplefilter("ignore")
            from mace.calculators import MACECalculator
    except ImportError as exc:
        raise UserError(f"{path}: serving a mace_run_train model needs mace-torch: {INSTALL_HINT}") from exc

    class MaceCliCalculator(MACECalculator):
        """MACECalculator that checks each frame's elements first (ffpt's :func:`check_structure`)."""

        architecture = "mace"

        def check_atoms(self, atoms, where: str | None = None) -> None:
            check_structure(self, atoms, self.source, where)

        def calculate(self, atoms=None, properties=None, system_changes=all_changes):
            if atoms is not None:
                self.check_atoms(atoms)
            super().calculate(atoms, properties, system_changes)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = torch.load(path, map_location=device, weights_only=False)
    own = str(next(model.parameters()).dtype).removeprefix("torch.")
    wanted = own if dtype is None else str(dtype).removeprefix("torch.")
    calculator = MaceCliCalculator(models=model, device=device, default_dtype=wanted)
    calculator.source = str(path)
    calculator.elements = [int(z) for z in model.atomic_numbers]
    calculator.cutoff = float(calculator.r_max)  # A
    return calculator
