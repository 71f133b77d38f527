"""The tutorials run as written, on the tiny settings each page states.

Every tutorial page (``docs/tutorials/*.md`` but the index) has a ``!!! tip "Tiny settings"`` box listing
replacements ``- `A` → `B```. The test checks that every ``A`` occurs in the page's code, applies the
replacements, and then runs the page's top-level code blocks in order in a fresh folder (with
``experiments/`` linked into it and a stand-in for ``../shared/data/h2combustion`` beside it, as in a clone
of the repository; the stand-in holds channel 09's three hand-made HO2 geometries and its reactions.json
entry, so a fresh clone without the data set runs every page):

- ``yaml`` / ``xml`` blocks with ``title="NAME"`` are written to the file NAME;
- ``bash`` blocks run line by line (continuation lines joined): ``ffpt ...`` in this process through
  :func:`ffpt.cli.main`, which must return 0; ``cd DIR`` changes the folder; a line ending in ``&`` starts
  a background process (stopped at the end); anything else runs in ``bash -euo pipefail``;
- ``python`` blocks run in one namespace per page.

So a renamed flag, key or function in a tutorial fails here. Run time on 2 idle cores: about a minute
for all pages, half of it the export of one model (``ffpt export`` compiles C++).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sysconfig
from pathlib import Path

import json

import pytest

from ffpt.cli import main

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = sorted(p for p in (ROOT / "docs/tutorials").glob("*.md") if p.name != "index.md")

FENCE = re.compile(r'^```(\w+)(?:[^\n]*?title="([^"]+)")?[^\n]*\n(.*?)^```[ \t]*$', re.S | re.M)
TINY_BOX = re.compile(r'^!!! tip "Tiny settings"\n((?:[ \t]+.*\n|\n)+)', re.M)
REPLACEMENT = re.compile(r"^\s+- `(.+?)` → `(.*?)`", re.M)


def tiny_replacements(text: str) -> list[tuple[str, str]]:
    box = TINY_BOX.search(text)
    assert box, "no '!!! tip \"Tiny settings\"' box"
    pairs = REPLACEMENT.findall(box.group(1))
    assert pairs, "the Tiny settings box lists no replacements"
    return pairs


def code_blocks(text: str) -> list[tuple[str, str | None, str]]:
    """(language, title, code) of the page's top-level fenced blocks, in order."""
    return [(lang, title, code) for lang, title, code in FENCE.findall(text)]


def apply_tiny(blocks, pairs):
    code = "\n".join(block[2] for block in blocks)
    for old, _ in pairs:
        assert old in code, f"tiny replacement {old!r} matches no code of the page"
    out = []
    for lang, title, body in blocks:
        for old, new in pairs:
            body = body.replace(old, new)
        out.append((lang, title, body))
    return out


def shell_lines(body: str) -> list[str]:
    joined = re.sub(r"\\\n\s*", " ", body)
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")]


# Channel 09 (HO2 -> H + O2, a doublet) in the data set's formats: xyz geometries (A) and reactions.json.
# Hand-made HO2 geometries (O-O 1.3 A; O-H 0.97 A in the reactant, stretched towards H + O2 after it).
CHANNEL_09 = {"reaction": "HO2 -> H + O2", "multiplicity": 2, "natoms": 3,
              "cv": [["O1_H1"], ["O2_H1"]], "r0": [0.96, 1.84]}
HO2 = {"reactant": [[0.0, 0.0, 0.0], [1.30, 0.0, 0.0], [-0.30, 0.92, 0.0]],
       "TS": [[0.0, 0.0, 0.0], [1.25, 0.0, 0.0], [-0.75, 1.45, 0.0]],
       "product": [[0.0, 0.0, 0.0], [1.21, 0.0, 0.0], [-1.40, 2.30, 0.0]]}


def write_combustion_stand_in(root: Path) -> None:
    """``root/geometries/{kind}_09.xyz`` and ``root/reactions.json``, as the data set lays them out."""
    (root / "geometries").mkdir(parents=True)
    (root / "reactions.json").write_text(json.dumps({"09": CHANNEL_09}))
    for kind, positions in HO2.items():
        atoms = "\n".join(f"{s} {x:.4f} {y:.4f} {z:.4f}" for s, (x, y, z) in zip("OOH", positions))
        (root / "geometries" / f"{kind}_09.xyz").write_text(f"3\nStep 0 E= -150.8\n{atoms}\n")


def run_page(page: Path, folder: Path, monkeypatch) -> None:
    text = page.read_text()
    blocks = apply_tiny(code_blocks(text), tiny_replacements(text))
    work = folder / "ffpt"  # as a clone: experiments/ inside, ../shared/ beside it
    work.mkdir()
    (work / "experiments").symlink_to(ROOT / "experiments")
    write_combustion_stand_in(folder / "shared/data/h2combustion")
    monkeypatch.chdir(work)
    scripts = sysconfig.get_path("scripts")  # i-pi and ffpt of this Python, whatever PATH holds
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PATH": f"{scripts}{os.pathsep}{os.environ.get('PATH', '')}"}
    background: list[subprocess.Popen] = []
    namespace: dict = {"__name__": "__tutorial__"}
    try:
        for lang, title, body in blocks:
            if title:
                Path(title).write_text(body)
            elif lang == "python":
                exec(compile(body, f"{page.name}:python", "exec"), namespace)
            elif lang == "bash":
                for line in shell_lines(body):
                    words = shlex.split(line, comments=True)
                    if words[0] == "ffpt" and not line.rstrip().endswith("&"):
                        assert main(words[1:]) == 0, f"{page.name}: {line}"
                    elif words[0] == "cd":
                        monkeypatch.chdir(words[1])
                    elif line.endswith("&"):
                        background.append(subprocess.Popen(["bash", "-c", line.rstrip("&")], env=env))
                    else:
                        subprocess.run(["bash", "-euo", "pipefail", "-c", line], env=env, check=True,
                                       timeout=300)
    finally:
        for process in background:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=30)


def test_every_tutorial_has_tiny_settings_and_code():
    assert len(TUTORIALS) >= 4
    for page in TUTORIALS:
        text = page.read_text()
        apply_tiny(code_blocks(text), tiny_replacements(text))
        assert any(lang == "bash" for lang, _, _ in code_blocks(text)), page.name


@pytest.mark.slow
@pytest.mark.parametrize("page", TUTORIALS, ids=lambda p: p.stem)
def test_tutorial_runs(page, tmp_path, monkeypatch):
    run_page(page, tmp_path, monkeypatch)
