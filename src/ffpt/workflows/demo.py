"""The embedded demo: a small but real FFPT-FT vs scratch comparison on ethanol.

MMFF94 labels of ethanol sampled by FF MD, normal modes and random displacements pre-train the
model; PBE/def2-SVP (PySCF) labels of configurations from 1000 K FF MD fine-tune it (and train
the scratch arm); both are tested on held-out DFT frames and run 500 K MD with the bond-deviation
stability monitor. Sized to finish within 15 minutes on 2 CPU cores.
"""

from __future__ import annotations

from ffpt.workflows.config import ExperimentConfig

DEMO = {
    "name": "ethanol demo (MMFF94 pre-training, PBE/def2-SVP fine-tuning)",
    "seeds": [{"smiles": "CCO", "name": "ethanol"}],
    "pretraining": {
        "teacher": "mmff94",
        "seed": 0,
        "md": {"temperatures": [300.0, 1000.0, 2000.0], "frames": 300, "stride": 10},
        "normal_modes": {"temperatures": [300.0, 1000.0, 2000.0], "frames": 150},
        "random": {"sigmas": [0.05, 0.1], "frames": 150},
    },
    "abinitio": {
        "teacher": "pyscf",
        "teacher_options": {"xc": "pbe", "basis": "def2-svp", "stability": False, "conv_tol": 1e-8},
        "sampling": {
            "seed": 1,
            "md": {"temperatures": [1000.0], "frames": 48, "stride": 40},
            "normal_modes": None,
            "random": None,
        },
        "workers": 2,
        "n_test": 16,
        "n_valid": 4,
    },
    "budgets": [10, 28],
    "arm_seeds": 1,
    "model": {"n_features": 32, "n_layers": 2, "cutoff": 4.5},
    "pretrain": {"max_epochs": 40, "max_time_minutes": 2.5, "batch_size": 32, "lr": 2e-3, "ema_decay": 0.95,
                 "progress_bar": False},
    "finetune": {"max_epochs": 150, "max_time_minutes": 0.75, "batch_size": 4, "lr": 1e-3, "ema_decay": 0.9,
                 "early_stopping_patience": 40, "progress_bar": False},
    "stability": {
        "n_runs": 3,
        "md": {"steps": 1500, "timestep_fs": 0.5, "temperature_K": 500.0, "ensemble": "langevin",
               "save_every": 50, "check_every": 10, "monitors": {"max_bond_deviation": 0.5, "min_distance": 0.5}},
    },
}


def demo_config() -> ExperimentConfig:
    return ExperimentConfig.model_validate(DEMO)
