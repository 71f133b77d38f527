"""Pre-trained models on frames denser than isolated molecules (issue 16, BENCHMARKS.md 12e/12f).

For each model file prints its energy (eV) on the exporter's two probe frames (a 10-atom cluster and
a periodic 24-atom box, atoms on a jittered 1.6 A grid: :func:`ffpt.models.export.probe_frames`)
and, with ``--frames FILE``, its energy and force MAE against the labels of those frames (e.g.
crowded force-field clusters, ``benchmarks/crowd_frames.py``), with the largest |E| error; with
``--no-prior`` those errors are of the network alone (a model pre-trained with ``fit_prior: false``).

    python benchmarks/dense_probe.py runs/a/pretrain_s0/model.pt runs/b/pretrain_s0/model.pt \
        --frames runs/crowds_test.extxyz
"""

from __future__ import annotations

import argparse

import numpy as np

from ffpt.data import energy_of, forces_of, read_frames
from ffpt.models.export import probe_frames
from ffpt.models.inference import predict_frames
from ffpt.models.model_file import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--frames", help="labelled extxyz to score the models on")
    parser.add_argument("--no-prior", action="store_true", help="score the network without its repulsion prior")
    args = parser.parse_args()
    frames = read_frames(args.frames) if args.frames else []
    for path in args.models:
        model = load_model(path)
        probes, _ = predict_frames(model, probe_frames(model))
        line = f"{path}: probe cluster {probes[0]:.4g} eV, periodic box {probes[1]:.4g} eV"
        if frames:
            energies, forces = predict_frames(model, frames, prior=not args.no_prior)
            de = np.abs([(e - energy_of(a)) / len(a) for e, a in zip(energies, frames)])
            df = np.concatenate([np.abs(f - forces_of(a)).ravel() for f, a in zip(forces, frames)])
            what = " (network alone)" if args.no_prior else ""
            line += (f"; {len(frames)} frames{what}: energy MAE {1e3 * de.mean():.1f} meV/atom"
                     f" (max {1e3 * de.max():.3g}), force MAE {1e3 * df.mean():.1f} meV/A")
        print(line, flush=True)


if __name__ == "__main__":
    main()
