"""A run directory whose stages are skipped when their inputs have not changed.

Each stage ``name`` owns ``RUN/name/``. Its inputs (a JSON-able dict: config values, upstream
outputs, file digests) are hashed: files by content, folders by resolved path, never by spelling.
A finished stage whose recorded hash matches is skipped and its outputs returned. An unfinished
stage (killed mid-way) is re-entered with its folder intact, so resumable work inside it (label
caches, training checkpoints, MD checkpoints) carries on. A stage whose inputs changed starts from
an empty folder. The run directory is made absolute, so the paths its stages return are the same
from any working directory."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ffpt.fileio import absolute, atomic_write_json, file_sha256


def _with_file_digests(value, dirs: str = "absolute"):
    """``value`` with every path (``Path`` or string) of an existing file replaced by its content hash
    and every path of an existing folder by its resolved path (``dirs``: which folder paths count:
    ``"absolute"`` ones and any ``Path``; ``"all"``, relative names too; ``"none"``, the spelling as
    before folders were resolved)."""
    if isinstance(value, dict):
        return {k: _with_file_digests(v, dirs) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_with_file_digests(v, dirs) for v in value]
    if isinstance(value, (str, Path)) and str(value):
        try:
            path = Path(value)
            if path.is_file():
                return f"file sha256 {file_sha256(value)}"
            if dirs != "none" and (dirs == "all" or isinstance(value, Path) or path.is_absolute()) and path.is_dir():
                return f"dir {path.resolve()}"
        except OSError:  # not a usable path (e.g. too long)
            pass
        return str(value)
    return value


def digest(value, dirs: str = "absolute") -> str:
    """Stable SHA-256 of a JSON-able value; paths of existing files (also as strings, e.g. from
    YAML) hash by content, so an edited structure or data file reruns the stages that read it, and
    absolute paths of folders by their resolved path, so that no spelling of a path (relative from
    one folder, absolute from another) changes a key. ``dirs``: see :func:`_with_file_digests`."""
    text = json.dumps(_with_file_digests(value, dirs), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def recorded_key_matches(recorded_key: str, inputs, recorded_inputs, key: str) -> bool:
    """A stage recorded before folder paths were resolved in keys is still up to date: its key is the
    old digest of the same inputs, or of its recorded inputs (same file contents) which name the same
    files and folders from here."""
    if recorded_key == key:
        return True
    if digest(inputs, dirs="none") == recorded_key:
        return True
    return (recorded_inputs is not None and digest(recorded_inputs, dirs="none") == recorded_key
            and digest(recorded_inputs, dirs="all") == key)


@dataclass
class StageLog:
    """What happened to each stage in this invocation: 'ran', 'resumed' or 'skipped'."""

    events: list[tuple[str, str]] = field(default_factory=list)

    def status(self, name: str) -> str:
        return dict(self.events)[name]


class RunDirectory:
    """Runs named stages inside ``root`` with input-hash caching."""

    def __init__(self, root: str | os.PathLike, echo: Callable[[str], None] = print):
        self.root = absolute(root)  # outputs name their files absolutely: the same from any working folder
        self.root.mkdir(parents=True, exist_ok=True)
        self.log = StageLog()
        self.echo = echo

    def stage(self, name: str, inputs: dict, work: Callable[[Path], dict],
              earlier: Callable[[], dict] | None = None) -> dict:
        """Return ``work(folder)``'s outputs, running it only if the inputs changed or it never finished.
        ``earlier``: the inputs an earlier ffpt keyed this stage by (computed only when the key does not
        match): a stage recorded under them is up to date too, and is recorded again under ``inputs``."""
        folder = self.root / name
        key = digest(inputs)
        done, started = folder / "stage.json", folder / "inputs.json"
        begun = json.loads(started.read_text()) if started.exists() else None

        def matches(recorded_key: str) -> bool:
            recorded_inputs = begun and begun.get("inputs")
            if recorded_key_matches(recorded_key, inputs, recorded_inputs, key):
                return True
            if earlier is None:
                return False
            old = earlier()
            return recorded_key_matches(recorded_key, old, recorded_inputs, digest(old))

        if done.exists():
            record = json.loads(done.read_text())
            if matches(record["key"]):
                if record["key"] != key:  # recorded under the old key: record the new one
                    atomic_write_json(started, {"key": key, "inputs": inputs})
                    atomic_write_json(done, {**record, "key": key})
                self.log.events.append((name, "skipped"))
                self.echo(f"[{name}] up to date, skipped")
                return record["outputs"]
        status = "ran"
        if begun is not None and not done.exists() and matches(begun["key"]):
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
