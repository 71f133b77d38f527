"""ffpt train: train an MLIP (stage scratch, pretrain or finetune) from YAML and/or flags."""

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
}


def add_arguments(parser):
    parser.add_argument("config", nargs="?", help="YAML config (optional: flags alone suffice)")
    parser.add_argument("overrides", nargs="*", help="dotted.key=value overrides, e.g. training.lr=5e-4")
    parser.add_argument("--train", help="training frames (extxyz with REF_energy/REF_forces)")
    parser.add_argument("--valid", help="validation frames (default: 10%% of --train)")
    parser.add_argument("--stage", choices=["scratch", "pretrain", "finetune"])
    parser.add_argument("--init", help="pre-trained model file (stage finetune)")
    parser.add_argument("--architecture", help="model architecture (default newtonnet)")
    parser.add_argument("--max-epochs", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--accelerator", help="cpu, gpu or auto")
    parser.add_argument("--devices", help="number of devices (Lightning)")
    parser.add_argument("--num-nodes", type=int)
    parser.add_argument("--out", help="output folder (default runs/train)")


def run(args) -> int:
    from ffpt.training.config import TrainConfig, apply_overrides, parse_config, read_yaml
    from ffpt.training.stages import train

    values, source = {}, "flags"
    overrides = list(args.overrides)
    if args.config and "=" in args.config:  # no YAML, only overrides
        overrides.insert(0, args.config)
    elif args.config:
        values, source = read_yaml(args.config), args.config
    apply_overrides(values, overrides)
    for flag, key in FLAGS.items():
        value = getattr(args, flag)
        if value is not None:
            apply_overrides(values, [f"{key}={value}"])
    config = parse_config(TrainConfig, values, source)
    result = train(config)
    m = result.metrics
    print(
        f"validation: {m['n_frames']} frames, energy MAE {m['energy_mae_mev_per_atom']:.2f} meV/atom, "
        f"force MAE {m['forces_mae_mev_per_a']:.1f} meV/A"
    )
    print(result.model_path)
    return 0
