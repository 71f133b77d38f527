"""ffpt: force-field pre-training and ab initio fine-tuning of machine-learned interatomic potentials."""

__version__ = "0.1.0"


def load_calculator(path, device: str = "cpu", **kwargs):
    """Return the ASE calculator of an ffpt model file (see :mod:`ffpt.models.calculator`)."""
    from ffpt.models.calculator import MLIPCalculator

    return MLIPCalculator.from_file(path, device=device, **kwargs)


__all__ = ["__version__", "load_calculator"]
