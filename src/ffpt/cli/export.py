"""``ffpt export``: a model file as a compiled AOTInductor package (``.pt2``) for ASE, Python or C++."""

from __future__ import annotations

import argparse

HELP = ("compile a model file into an AOTInductor package (.pt2) of energy, forces and stress, checked against it; "
        "a mace_run_train NAME.model is first converted to ffpt's MACE")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="ffpt model file (model.pt), a committee file (committee.json) whose "
                        "members stack (one package of all members), or a model trained by mace_run_train "
                        "(NAME.model, MACE or ScaleShiftMACE: converted to ffpt's MACE exactly, else refused)")
    parser.add_argument("--out", required=True, help="package to write, ending in .pt2")
    parser.add_argument("--dtype", choices=["float32", "float64"], help="precision (default: the model file's)")
    parser.add_argument("--model-out", help="with a mace_run_train NAME.model: also write the converted ffpt "
                        "model file (.pt)")


def run(args: argparse.Namespace) -> int:
    import json

    from ffpt.fileio import absolute, output_lock
    from ffpt.models.export import export_file

    out = absolute(args.out)
    with output_lock(out, "ffpt export"):
        model_out = absolute(args.model_out) if args.model_out else None
        print(json.dumps(export_file(absolute(args.model), out, args.dtype, model_out)))
    return 0
