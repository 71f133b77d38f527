"""ffpt train: train an MLIP (stage scratch, pretrain or finetune) from YAML and/or flags."""

import os
from contextlib import nullcontext

from ffpt.cli._config import add_config_arguments, resolve_config
from ffpt.cli._formats import add_format_arguments, format_flags

HELP = "train an MLIP: stage scratch, pretrain or finetune (YAML config and/or flags)"

# flag -> dotted config key
FLAGS = {
    "train": "data.train",
    "valid": "data.valid",
    "stage": "training.stage",
    "max_epochs": "training.max_epochs",
    "batch_size": "training.batch_size",
    "lr": "training.lr",
    "seed": "training.seed",
    "architecture": "model.architecture",
    "init": "finetune.init",
    "out": "out",
    "accelerator": "training.accelerator",
    "devices": "training.devices",
    "num_nodes": "training.num_nodes",
    "strategy": "training.strategy",
    "committee": "committee.size",
}


def add_arguments(parser):
    add_config_arguments(parser, "sections data, model, training, finetune, out")
    parser.add_argument("--train", help="training frames (extxyz, npz or ASE db; keys and units: --energy-key, ...)")
    parser.add_argument("--valid", help="validation frames (default: 10%% of --train)")
    parser.add_argument("--stage", choices=["scratch", "pretrain", "finetune"])
    parser.add_argument("--init", help="pre-trained model file (stage finetune)")
    parser.add_argument("--architecture", help="model architecture (default newtonnet)")
    parser.add_argument("--max-epochs", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--accelerator", help="cpu, gpu or auto")
    parser.add_argument("--devices", help="number of devices per node (Lightning)")
    parser.add_argument("--num-nodes", type=int)
    parser.add_argument("--strategy", help="Lightning strategy for several devices or nodes, e.g. ddp (default auto)")
    parser.add_argument("--committee", type=int, metavar="K",
                        help="train K members (seeds seed..seed+K-1, bootstrap resamples of the labels) into "
                             "OUT/member_k and write OUT/committee.json; costs K runs")
    parser.add_argument("--out", help="output folder (default runs/train)")
    add_format_arguments(parser, "data.")


# rank variables of Lightning's launcher, torchrun, SLURM and MPI
RANK_VARIABLES = ("LOCAL_RANK", "NODE_RANK", "RANK", "SLURM_PROCID", "PMI_RANK", "OMPI_COMM_WORLD_RANK")


def _first_process() -> bool:
    """This process is rank zero of its job (or runs alone)."""
    return all(os.environ.get(name, "0").strip() in ("", "0") for name in RANK_VARIABLES)


def run(args) -> int:
    from ffpt.fileio import output_lock
    from ffpt.training.committee import train_committee
    from ffpt.training.config import TrainConfig
    from ffpt.training.stages import train

    flags = {key: getattr(args, flag) for flag, key in FLAGS.items()} | format_flags(args, "data.")
    config = resolve_config(TrainConfig, args, flags)
    # one writer per run folder; the other ranks of a DDP run are the same run (their launcher
    # reruns this command), so only the first process of the job holds the lock
    with output_lock(config.out, "ffpt train") if _first_process() else nullcontext():
        result = train_committee(config) if config.committee.size > 1 else train(config)
    if not result.is_global_zero:  # the other DDP ranks run this command too; one prints
        return 0
    m = result.metrics
    print(
        f"validation: {m['n_frames']} frames, energy MAE {m['energy_mae_mev_per_atom']:.2f} meV/atom, "
        f"force MAE {m['forces_mae_mev_per_a']:.1f} meV/A"
    )
    print(result.model_path)
    return 0
