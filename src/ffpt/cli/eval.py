"""ffpt eval: errors of a model file on labelled frames, as JSON, a printed table and a parity plot.

``ffpt eval [CONFIG.yaml] [MODEL [DATA ...]] [dotted.key=value ...] [--flags]`` (EvalConfig keys model,
data (a file or a list), json, plot, predictions, batch_size, device, and the data-format keys
energy_key, forces_key, stress_key, charge_key, spin_key, energy_unit, length_unit). The positional
words that are neither a ``.yaml``/``.yml`` file nor ``key=value`` are MODEL then DATA files, so
``ffpt eval MODEL DATA`` and ``ffpt eval MODEL A.extxyz B.npz`` work.
"""

from __future__ import annotations

import argparse

from ffpt.cli._config import add_config_arguments, resolve_config
from ffpt.cli._formats import add_format_arguments, format_flags

HELP = "evaluate a model file on labelled frames (several files, any format): errors per file and config_type"

FLAGS = {"model": "model", "data": "data", "json": "json", "plot": "plot", "predictions": "predictions",
         "batch_size": "batch_size", "device": "device"}


def add_arguments(parser):
    add_config_arguments(parser, "EvalConfig keys: model, data, json, plot, predictions, batch_size, device, "
                         "energy_key, ...")
    parser.add_argument("--model", help="ffpt model file (or the first positional word)")
    parser.add_argument("--data", action="append", help="labelled frames, repeatable (or the positional words "
                        "after MODEL): extxyz, npz or ASE db")
    parser.add_argument("--json", help="write errors here (default: first DATA stem + .errors.json)")
    parser.add_argument("--plot", help="parity plot PNG (default: next to the JSON)")
    parser.add_argument("--predictions", help="write the frames with MLIP_energy/MLIP_forces to this extxyz")
    parser.add_argument("--batch-size", type=int, help="frames per batch (default 64)")
    parser.add_argument("--device", help="torch device (default cpu)")
    add_format_arguments(parser)


def _split_words(args: argparse.Namespace) -> dict:
    """Sort the positional words into the YAML file, ``key=value`` overrides, MODEL and DATA files;
    returns the MODEL/DATA values as config keys (flags win over them)."""
    from ffpt.config import ConfigError

    words = [w for w in (args.config, *args.overrides) if w is not None]
    yaml_files = [w for w in words if "=" not in w and w.lower().endswith((".yaml", ".yml"))]
    plain = [w for w in words if "=" not in w and w not in yaml_files]
    if len(yaml_files) > 1:
        raise ConfigError(f"unexpected words {words}: give [CONFIG.yaml] [MODEL [DATA ...]] [key=value ...]")
    args.config = yaml_files[0] if yaml_files else None
    args.overrides = [w for w in words if "=" in w]
    return {"model": args.model if args.model is not None else (plain[0] if plain else None),
            "data": args.data if args.data is not None else (plain[1:] or None)}


def _row(name: str, t) -> str:
    return (f"{name[-40:]:<40} {t.n_frames:>7} {t.energy_mae_mev_per_atom:>10.2f} {t.energy_rmse_mev_per_atom:>10.2f} "
            f"{t.forces_mae_mev_per_a:>10.1f} {t.forces_rmse_mev_per_a:>10.1f}")


def run(args) -> int:
    from ffpt.jobs.eval import EvalConfig, run_eval

    positional = _split_words(args)
    flags = {key: getattr(args, flag) for flag, key in FLAGS.items()} | positional | format_flags(args)
    config = resolve_config(EvalConfig, args, flags)
    result = run_eval(config)
    t = result.table
    print(
        f"{t.n_frames} frames: energy MAE {t.energy_mae_mev_per_atom:.2f} meV/atom "
        f"(RMSE {t.energy_rmse_mev_per_atom:.2f}), force MAE {t.forces_mae_mev_per_a:.1f} meV/A "
        f"(RMSE {t.forces_rmse_mev_per_a:.1f})"
    )
    if result.groups:
        print(f"{'group':<40} {'frames':>7} {'E MAE':>10} {'E RMSE':>10} {'F MAE':>10} {'F RMSE':>10}"
              "  (meV/atom, meV/A)")
        for group, tables in result.groups.items():
            for name, table in tables.items():
                print(_row(f"{group} {name}", table))
    print(result.json_path)
    print(result.plot)
    if result.predictions is not None:
        print(result.predictions)
    return 0
