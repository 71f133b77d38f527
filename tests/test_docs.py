"""The documentation site: it builds with warnings as errors, and its generated reference lists every
verb, flag and config key of the code.

``mkdocs build --strict`` runs once per test session (about 20 s on a loaded 2-core machine); the
reference checks walk the argparse parsers and pydantic models themselves, independently of the
generator in ``docs/gen_reference.py``, and the commands written in the pages are checked against
the parsers and models, so a renamed flag or key fails here.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import re
import shlex
import subprocess
import sys
import time
import typing
from pathlib import Path

from pydantic import BaseModel

from ffpt.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _generator():
    spec = importlib.util.spec_from_file_location("gen_reference", DOCS / "gen_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen = _generator()
VERBS = gen.subparsers(build_parser())
CONFIGS = gen.all_verb_configs()


def test_site_builds_strict_with_the_generated_reference(tmp_path):
    """``mkdocs build --strict`` (warnings, broken links and anchors are errors) holds every page, every
    verb on the command-line page and the API of the main modules; one build per session (it takes
    20-40 s on two loaded cores)."""
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    seconds = time.perf_counter() - start
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stderr, result.stderr
    for page in ("index.html", "getting-started/index.html", "results/index.html", "benchmarks/index.html",
                 "reference/cli/index.html", "reference/config/index.html", "reference/api/index.html",
                 "tutorials/own-molecule/index.html", "benchmarks/figures/ethanol_survival_10ps_n10.png"):
        assert (tmp_path / page).is_file(), page
    cli = (tmp_path / "reference/cli/index.html").read_text()
    for verb in VERBS:
        assert f"ffpt {verb}" in cli, verb
    api = (tmp_path / "reference/api/index.html").read_text()
    for name in ("ffpt.load_calculator", "ffpt.models.committee", "ffpt.analysis.survival", "ffpt.config"):
        assert name in api, name
    assert seconds < 120, f"docs build took {seconds:.0f} s"


def _verb_sections(markdown: str) -> dict[str, str]:
    parts = re.split(r"^## `ffpt ([\w-]+)`$", markdown, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def test_cli_reference_lists_every_verb_and_argument():
    sections = _verb_sections(gen.cli_markdown())
    assert set(sections) == set(VERBS)
    for verb, parser in VERBS.items():
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction) or action.help == argparse.SUPPRESS:
                continue  # -h, and deprecated flags hidden from --help
            for name in action.option_strings:
                assert f"`{name}`" in sections[verb], f"ffpt {verb} {name}"
            if not action.option_strings:
                assert f"`{action.metavar or action.dest}`" in sections[verb], f"ffpt {verb} {action.dest}"


def test_every_verb_names_the_config_models_its_module_resolves():
    """The generator reads each verb's models from its source; checked here by a plain text search and
    by loading each as a pydantic model."""
    assert set(CONFIGS) == set(VERBS)
    for verb in VERBS:
        source = (ROOT / "src/ffpt/cli" / f"{verb.replace('-', '_')}.py").read_text()
        used = set(re.findall(r"resolve_config\((\w+)", source))
        assert used == {c.rsplit(".", 1)[1] for c in CONFIGS[verb]}, verb
        for dotted in CONFIGS[verb]:
            assert issubclass(gen.load_class(dotted), BaseModel), dotted
    assert sum(map(len, CONFIGS.values())) >= 10


def _models_in(annotation) -> list[tuple[str, type[BaseModel]]]:
    """(container mark, model) of the config models in an annotation: "" for M or M | None, "[]" for
    list[M], "{}" for dict[str, M]."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [("", annotation)]
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    mark = "[]" if origin in (list, tuple) else "{}" if origin is dict else ""
    inner = args[1:] if origin is dict else args
    return [(mark + m, model) for arg in inner for m, model in _models_in(arg)]


def _dotted_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every key of a model and of its sections, walked here independently of the generator."""
    keys = []
    for name, field in model.model_fields.items():
        keys.append(prefix + name)
        for mark, sub in _models_in(field.annotation):
            keys += _dotted_keys(sub, f"{prefix}{name}{mark}.")
    return keys


def test_config_reference_lists_every_key_with_type_and_default():
    markdown = gen.config_markdown()
    models = {c for classes in CONFIGS.values() for c in classes}
    assert models, "no config models"
    for dotted in sorted(models):
        model = gen.load_class(dotted)
        assert f"{{#{gen.anchor(dotted)}}}" in markdown, dotted
        for key in _dotted_keys(model):
            assert re.search(rf"^\| `{re.escape(key)}` \| [^|]+ \| `[^`]+` \|", markdown, flags=re.M), \
                f"{dotted}: key {key} missing"
    for title, dotted in gen.OPTION_MODELS.items():
        prefix = title.split(" ")[0] + "."
        for key in _dotted_keys(gen.load_class(dotted), prefix):
            assert f"| `{key}` |" in markdown, f"{title}: {key}"


def test_config_reference_reads_comment_descriptions():
    """A field described only by a comment on its line gets that comment (TrainingConfig.energy_weight)."""
    assert re.search(r"^\| `training\.energy_weight` \| float \| `1\.0` \| on MSE of energy per atom",
                     gen.config_markdown(), flags=re.M)


# ------------------------------------------------------------------ commands written in the pages


def _bash_blocks(text: str) -> list[str]:
    return re.findall(r"^ *```(?:bash|sh)\n(.*?)^ *```", text, flags=re.S | re.M)


def _commands(block: str) -> list[list[str]]:
    """``ffpt VERB ...`` commands of a shell block (continuation lines joined, comments dropped)."""
    joined = re.sub(r"\\\n", " ", block)
    commands = []
    for line in joined.splitlines():
        for part in re.split(r"&&|;|\|(?!\|)|&(?!&)", line):
            try:
                words = shlex.split(part, comments=True)
            except ValueError:
                continue
            words = [w for w in words if not re.fullmatch(r"[A-Z_]+=\S*", w)]  # leading env assignments
            if len(words) >= 2 and words[0] == "ffpt" and words[1] in VERBS:
                commands.append(words[1:])
            elif words[:3] == ["python", "-m", "ffpt"] and len(words) > 3:
                commands.append(words[3:])
    return commands


def _pages():
    return sorted(DOCS.rglob("*.md")) + [ROOT / "README.md"]


def _config_keys_of(verb: str) -> set[str]:
    keys = set()
    for dotted in CONFIGS[verb]:
        keys |= {k.replace("[]", "").replace("{}", "") for k in _dotted_keys(gen.load_class(dotted))}
    return keys


def test_every_documented_command_uses_real_flags_and_keys():
    """Every ``--flag`` of an ``ffpt VERB`` line in a shell block of the docs or README is an option of that
    verb, and every ``dotted.key=value`` a key of its config (model.options and per-architecture keys
    are checked when the verb runs)."""
    checked = 0
    for page in _pages():
        for block in _bash_blocks(page.read_text()):
            for words in _commands(block):
                verb, parser = words[0], VERBS[words[0]]
                actions = {name: action for action in parser._actions for name in action.option_strings}
                known = _config_keys_of(verb)
                rest = iter(words[1:])
                for word in rest:
                    if word.startswith("--"):
                        flag = word.split("=", 1)[0]
                        assert flag in actions, f"{page.name}: ffpt {verb} has no flag {flag}"
                        nargs = actions[flag].nargs
                        if "=" not in word and nargs is None:
                            next(rest, None)  # the flag's value
                        continue
                    if "=" in word and known:
                        key = word.split("=", 1)[0]
                        parts = key.split(".")
                        assert key in known or any(".".join(parts[:n]) in known and parts[n - 1] in
                                                   ("options", "per_architecture", "teacher_options")
                                                   for n in range(1, len(parts))), \
                            f"{page.name}: ffpt {verb} has no config key {key}"
                checked += 1
    assert checked > 40, f"only {checked} ffpt commands found in the docs"


def test_readme_is_a_landing_page_that_starts_with_the_two_commands():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert lines[:4] == [
        "```bash",
        "pip install -e . && ffpt demo --out runs/demo                 # main job: FFPT-FT vs scratch demo (<15 min, 2 cores)",
        "pip install -e '.[test,mace]' && python -m pytest -q -n 2          # test suite",
        "```",
    ]
    assert len(lines) <= 120, len(lines)
    for target in re.findall(r"\]\(((?:docs/|BENCHMARKS|benchmarks/)[^)#]*)", "\n".join(lines)):
        assert (ROOT / target).exists(), f"README links to a missing {target}"
