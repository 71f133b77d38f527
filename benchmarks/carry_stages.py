"""Carry an experiment's finished stages from one session to the next.

A four-arm run costs more CPU hours than one session has, and nothing outside the repository outlives a
session. ``pack`` copies the finished stages of a run folder (a ``stage.json`` written) whose names do not
start with ``export_`` -- sampling, labels, pre-training, training, MD stability -- into ``DEST``, without
their ``checkpoints/`` and ``logs/`` (a finished stage is never re-entered), and the killed stages that hold
progress: a label cache (PySCF minutes a label), checkpoints (a training or ``mace_run_train`` run resumes
from its latest one) or MD checkpoints (``checkpoint.json`` of each run: the MD goes on bit for bit), with
them; ``unpack`` copies them back to the run folder's original path (stage outputs name their files
absolutely). The exported packages (tens of MB each) are left out: an exported
model's MD stage is keyed by its model file and float type, so it is found up to date without its
package, which is made again only if some MD stage has to run.

    python benchmarks/carry_stages.py pack /work/runs/eth30 benchmarks/carry/ethanol_mace_n30
    python benchmarks/carry_stages.py unpack benchmarks/carry/ethanol_mace_n30 /work/runs/eth30
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

LEFT_OUT_STAGES = ("export_",)
LEFT_OUT_FOLDERS = ("checkpoints", "logs")
LABEL_CACHE = "label_cache"  # ffpt.teachers' per-frame label cache inside a labelling stage
PROGRESS = (LABEL_CACHE, "checkpoints", "checkpoint.json")  # what a killed stage resumes from (labels, training, MD)


def finished_stages(run: Path) -> list[Path]:
    """Folders of ``run`` (at any depth, outermost only) holding a finished stage that is carried."""
    found = sorted(done.parent for done in run.rglob("stage.json")
                   if not done.parent.relative_to(run).parts[0].startswith(LEFT_OUT_STAGES))
    return [stage for stage in found if not any(other in stage.parents for other in found)]


def killed_stages(run: Path) -> list[Path]:
    """Unfinished stages of ``run`` (inputs recorded, no ``stage.json``; not ``export_``) holding progress
    worth carrying: a label cache, checkpoints or MD checkpoints (:data:`PROGRESS`). The stage resumes from
    them (``RunDirectory.stage``)."""
    progress = {found.parent for marker in PROGRESS for found in run.rglob(marker)}
    stages = {folder for found in progress for folder in (found, *found.parents)
              if folder != run and run in folder.parents and (folder / "inputs.json").exists()
              and not (folder / "stage.json").exists()
              and not folder.relative_to(run).parts[0].startswith(LEFT_OUT_STAGES)}
    return sorted(stage for stage in stages if not any(other in stage.parents for other in stages))


def pack(run: Path, dest: Path) -> list[str]:
    """Copy the carried stages of ``run`` (finished ones, and killed ones with their progress) into
    ``dest`` (replacing what ``dest`` held); their names."""
    if dest.exists():
        shutil.rmtree(dest)
    names = []
    for stage in finished_stages(run):
        name = stage.relative_to(run)
        shutil.copytree(stage, dest / name, ignore=shutil.ignore_patterns(*LEFT_OUT_FOLDERS))
        names.append(str(name))
    for stage in killed_stages(run):
        name = stage.relative_to(run)
        shutil.copytree(stage, dest / name, ignore=shutil.ignore_patterns("logs"))
        names.append(f"{name} (killed: resumes)")
    return names


def unpack(carried: Path, run: Path) -> list[str]:
    """Copy the carried stages back into ``run``; a stage already finished there is kept as it is, and so
    is a killed stage already begun there."""
    names = []
    for stage in finished_stages(carried):
        name = stage.relative_to(carried)
        if (run / name / "stage.json").exists():
            continue
        if (run / name).exists():
            shutil.rmtree(run / name)  # an unfinished copy: the carried one is done
        shutil.copytree(stage, run / name)
        names.append(str(name))
    for stage in killed_stages(carried):
        name = stage.relative_to(carried)
        if not (run / name).exists():
            shutil.copytree(stage, run / name)
            names.append(str(name))
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["pack", "unpack"])
    parser.add_argument("source", type=Path)
    parser.add_argument("dest", type=Path)
    args = parser.parse_args()
    names = (pack if args.action == "pack" else unpack)(args.source, args.dest)
    print("\n".join(names) or "nothing to carry")


if __name__ == "__main__":
    main()
