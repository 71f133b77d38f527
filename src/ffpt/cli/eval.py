"""ffpt eval: errors of a model file on labelled frames, as JSON and a parity plot.

``ffpt eval [CONFIG.yaml] [MODEL [DATA]] [dotted.key=value ...] [--flags]`` (EvalConfig keys model,
data, json, plot, batch_size, device). The positional MODEL and DATA words (any word that is neither
a ``.yaml``/``.yml`` file nor ``key=value``) keep the older ``ffpt eval MODEL DATA`` working.
"""

from __future__ import annotations

import argparse

from ffpt.cli._config import add_config_arguments, resolve_config

HELP = "evaluate a model file on labelled frames: MAE/RMSE JSON and parity plot"

FLAGS = {"model": "model", "data": "data", "json": "json", "plot": "plot", "batch_size": "batch_size",
         "device": "device"}


def add_arguments(parser):
    add_config_arguments(parser, "EvalConfig keys: model, data, json, plot, batch_size, device")
    parser.add_argument("--model", help="ffpt model file (or the first positional word)")
    parser.add_argument("--data", help="labelled frames, extxyz (or the second positional word)")
    parser.add_argument("--json", help="write errors here (default: DATA stem + .errors.json)")
    parser.add_argument("--plot", help="parity plot PNG (default: next to the JSON)")
    parser.add_argument("--batch-size", type=int, help="frames per batch (default 64)")
    parser.add_argument("--device", help="torch device (default cpu)")


def _split_words(args: argparse.Namespace) -> dict:
    """Sort the positional words into the YAML file, ``key=value`` overrides and MODEL/DATA; returns
    the MODEL/DATA values as dotted keys (flags win over them)."""
    from ffpt.config import ConfigError

    words = [w for w in (args.config, *args.overrides) if w is not None]
    yaml_files = [w for w in words if "=" not in w and w.lower().endswith((".yaml", ".yml"))]
    plain = [w for w in words if "=" not in w and w not in yaml_files]
    if len(yaml_files) > 1 or len(plain) > 2:
        raise ConfigError(f"unexpected words {words}: give [CONFIG.yaml] [MODEL [DATA]] [key=value ...]")
    args.config = yaml_files[0] if yaml_files else None
    args.overrides = [w for w in words if "=" in w]
    return {key: flag if flag is not None else word
            for key, flag, word in zip(("model", "data"), (args.model, args.data), plain + [None, None])}


def run(args) -> int:
    from ffpt.jobs.eval import EvalConfig, run_eval

    positional = _split_words(args)
    flags = {key: getattr(args, flag) for flag, key in FLAGS.items()} | positional
    config = resolve_config(EvalConfig, args, flags)
    result = run_eval(config)
    t = result.table
    print(
        f"{t.n_frames} frames: energy MAE {t.energy_mae_mev_per_atom:.2f} meV/atom "
        f"(RMSE {t.energy_rmse_mev_per_atom:.2f}), force MAE {t.forces_mae_mev_per_a:.1f} meV/A "
        f"(RMSE {t.forces_rmse_mev_per_a:.1f})"
    )
    print(result.json_path)
    print(result.plot)
    return 0
