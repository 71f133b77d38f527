"""ffpt eval: errors of a model file on labelled frames, as JSON and a parity plot."""

HELP = "evaluate a model file on labelled frames: MAE/RMSE JSON and parity plot"


def add_arguments(parser):
    parser.add_argument("model", help="ffpt model file")
    parser.add_argument("data", help="labelled frames (extxyz)")
    parser.add_argument("--json", help="write errors here (default: DATA stem + .errors.json)")
    parser.add_argument("--plot", help="parity plot PNG (default: next to the JSON)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cpu")


def run(args) -> int:
    import json
    from pathlib import Path

    from ffpt.analysis.errors import parity_plot
    from ffpt.observables.errors import error_table
    from ffpt.data.io import read_frames
    from ffpt.models.inference import predict_frames
    from ffpt.models.model_file import load_model

    model = load_model(args.model, device=args.device)
    frames = read_frames(args.data)
    energies, forces = predict_frames(model, frames, args.batch_size, args.device)
    table = error_table(frames, energies, forces)
    json_path = Path(args.json) if args.json else Path(args.data).with_suffix(".errors.json")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps({**table.as_dict(), "model": str(args.model), "data": str(args.data)}, indent=2))
    plot = parity_plot(frames, energies, forces, args.plot or json_path.with_suffix(".png"), Path(args.model).name)
    print(
        f"{table.n_frames} frames: energy MAE {table.energy_mae_mev_per_atom:.2f} meV/atom "
        f"(RMSE {table.energy_rmse_mev_per_atom:.2f}), force MAE {table.forces_mae_mev_per_a:.1f} meV/A "
        f"(RMSE {table.forces_rmse_mev_per_a:.1f})"
    )
    print(json_path)
    print(plot)
    return 0
