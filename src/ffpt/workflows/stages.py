"""A run directory whose stages are skipped when their inputs have not changed.

Each stage ``name`` owns ``RUN/name/``. Its inputs (a JSON-able dict: config values, upstream
outputs, file digests) are hashed; a finished stage whose recorded hash matches is skipped and its
outputs returned. An unfinished stage (killed mid-way) is re-entered with its folder intact, so
resumable work inside it (label caches, training checkpoints, MD checkpoints) carries on. A
stage whose inputs changed starts from an empty folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ffpt.fileio import atomic_write_json, file_sha256


def _with_file_digests(value):
    """``value`` with every path (``Path`` or string) of an existing file replaced by its content hash."""
    if isinstance(value, dict):
        return {k: _with_file_digests(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_with_file_digests(v) for v in value]
    if isinstance(value, (str, Path)) and str(value):
        try:
            if Path(value).is_file():
                return f"file sha256 {file_sha256(value)}"
        except OSError:  # not a usable path (e.g. too long)
            pass
        return str(value)
    return value


def digest(value) -> str:
    """Stable SHA-256 of a JSON-able value; paths of existing files (also as strings, e.g. from
    YAML) hash by content, so an edited structure or data file reruns the stages that read it."""
    text = json.dumps(_with_file_digests(value), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class StageLog:
    """What happened to each stage in this invocation: 'ran', 'resumed' or 'skipped'."""

    events: list[tuple[str, str]] = field(default_factory=list)

    def status(self, name: str) -> str:
        return dict(self.events)[name]


class RunDirectory:
    """Runs named stages inside ``root`` with input-hash caching."""

    def __init__(self, root: str | os.PathLike, echo: Callable[[str], None] = print):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.log = StageLog()
        self.echo = echo

    def stage(self, name: str, inputs: dict, work: Callable[[Path], dict]) -> dict:
        """Return ``work(folder)``'s outputs, running it only if the inputs changed or it never finished."""
        folder = self.root / name
        key = digest(inputs)
        done, started = folder / "stage.json", folder / "inputs.json"
        if done.exists():
            record = json.loads(done.read_text())
            if record["key"] == key:
                self.log.events.append((name, "skipped"))
                self.echo(f"[{name}] up to date, skipped")
                return record["outputs"]
        status = "ran"
        if started.exists() and json.loads(started.read_text())["key"] == key and not done.exists():
            status = "resumed"
        elif folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(started, {"key": key, "inputs": inputs})
        self.echo(f"[{name}] {'resuming' if status == 'resumed' else 'running'}")
        t0 = time.perf_counter()
        outputs = work(folder)
        atomic_write_json(done, {"key": key, "outputs": outputs, "seconds": time.perf_counter() - t0})
        self.log.events.append((name, status))
        return outputs
