"""MLIP architectures, graphs and neighbour lists, model files and the ASE calculator."""

from ffpt.models.graph import AtomicGraph, NeighborListBuilder, collate, graph_from_atoms
from ffpt.models.mace import MACEPotential  # imports mace-torch only when a MACE model is built
from ffpt.models.model_file import build_model, load_model, read_model_file, save_model
from ffpt.models.newtonnet import NewtonNet
from ffpt.models.options import OPTIONS
from ffpt.models.potential import InteratomicPotential, ModelInputError, Prediction

# architecture name -> class; other backends (e.g. MACE) register here
ARCHITECTURES: dict[str, type[InteratomicPotential]] = {"newtonnet": NewtonNet, "mace": MACEPotential}

__all__ = [
    "ARCHITECTURES",
    "AtomicGraph",
    "InteratomicPotential",
    "MACEPotential",
    "ModelInputError",
    "NeighborListBuilder",
    "NewtonNet",
    "OPTIONS",
    "Prediction",
    "build_model",
    "collate",
    "graph_from_atoms",
    "load_model",
    "read_model_file",
    "save_model",
]
