"""ffpt: force-field pre-training and ab initio fine-tuning of machine-learned interatomic potentials."""

__version__ = "0.1.0"


def load_calculator(path, device: str = "cpu", **kwargs):
    """Return the ASE calculator of an ffpt model file (:mod:`ffpt.models.calculator`; ``compile=True``
    runs it through ``torch.compile``) or of an exported ``.pt2`` package (``ffpt export``,
    :mod:`ffpt.models.exported`; already compiled, takes no ``dtype`` or ``compile``)."""
    from ffpt.models.exported import ExportedCalculator, is_package

    if is_package(path):
        kwargs.pop("compile", None)  # the package is compiled already
        return ExportedCalculator(path, device=device, **kwargs)
    from ffpt.models.calculator import MLIPCalculator

    return MLIPCalculator.from_file(path, device=device, **kwargs)


__all__ = ["__version__", "load_calculator"]
