"""The CLI and configuration reference pages, generated from the code at every docs build.

A MkDocs hook (``hooks:`` in mkdocs.yml): :func:`on_files` adds ``reference/cli.md`` (every verb of
:func:`ffpt.cli.build_parser`, its usage, description and arguments) and ``reference/config.md`` (every
config section of every verb from its pydantic model: dotted key, type, default, description). The
descriptions are the fields' ``description`` or, where a field has none, the comment on its line or
the comment lines just above it. Nothing here is written by hand, so the reference cannot drift from
the parsers and models; ``tests/test_docs.py`` checks that every verb, flag and key appears.
"""

from __future__ import annotations

import argparse
import ast
import enum
import importlib
import inspect
import io
import json
import re
import textwrap
import tokenize
import types
import typing
from pathlib import Path, PurePath
from typing import Any, Iterator, Literal, Union

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

# The models a key names by architecture or recipe (no verb resolves them itself).
OPTION_MODELS: dict[str, str] = {
    "model.options (architecture newtonnet)": "ffpt.models.options.NewtonNetOptions",
    "model.options (architecture mace)": "ffpt.models.options.MACEOptions",
    "mace_reference (ffpt run)": "ffpt.training.mace_cli.MaceCliRecipe",
}


def verb_configs(verb: str) -> list[str]:
    """Dotted names of the config models a verb's module resolves (``resolve_config(MODEL, ...)``), each
    found where the module imports it from (or in the module itself): read from the source, so a new verb
    or a new model appears in the reference without an edit here."""
    module = importlib.import_module(f"ffpt.cli.{verb.replace('-', '_')}")
    tree = ast.parse(inspect.getsource(module))
    used = [node.args[0].id for node in ast.walk(tree)
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "resolve_config"
            and node.args and isinstance(node.args[0], ast.Name)]
    origin = {alias.asname or alias.name: f"{node.module}.{alias.name}" for node in ast.walk(tree)
              if isinstance(node, ast.ImportFrom) and node.module for alias in node.names}
    return [origin.get(name, f"{module.__name__}.{name}") for name in dict.fromkeys(used)]


def all_verb_configs() -> dict[str, list[str]]:
    from ffpt.cli import build_parser

    return {verb: verb_configs(verb) for verb in subparsers(build_parser())}


def load_class(dotted: str) -> type:
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


# ------------------------------------------------------------------------------------------- CLI


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The verb parsers of ``ffpt``'s parser, by name."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise ValueError("the parser has no verbs")


def plain_roles(text: str) -> str:
    """Sphinx roles and double backticks of docstrings as markdown code: :class:`~a.B` -> `a.B`."""
    return re.sub(r":[a-z]+:`~?([^`]+)`", r"`\1`", text.replace("``", "`"))


def _cell(text: Any) -> str:
    """Text for one markdown table cell: one line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def documented_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The arguments a user sees in ``--help``: all but -h and the hidden (deprecated) ones."""
    return [a for a in parser._actions if not isinstance(a, argparse._HelpAction) and a.help != argparse.SUPPRESS]


def _argument_row(action: argparse.Action) -> str:
    names = ", ".join(f"`{name}`" for name in action.option_strings) or f"`{action.metavar or action.dest}`"
    if action.nargs not in (0, None) or (action.option_strings and action.nargs is None):
        value = action.metavar or (("{" + ",".join(map(str, action.choices)) + "}") if action.choices
                                   else action.dest.upper())
        if isinstance(value, tuple):
            value = " ".join(value)
        if action.option_strings:
            names += f" `{value}`" + (" ..." if action.nargs in ("+", "*") else "")
    default = "" if action.default in (None, argparse.SUPPRESS, False) or action.nargs == 0 \
        else f"`{action.default}`"
    help_text = (action.help or "") % {"default": action.default, "prog": ""} if action.help else ""
    required = " (required)" if action.required and action.option_strings else ""
    return f"| {_cell(names)} | {_cell(help_text)}{required} | {_cell(default)} |"


def cli_markdown() -> str:
    """Markdown of every verb: usage, description, arguments and the config models it reads."""
    from ffpt.cli import build_parser

    parser = build_parser()
    lines = ["# Command line", "",
             "Generated from `ffpt.cli.build_parser()` at every docs build. Every verb takes",
             "`ffpt VERB [CONFIG.yaml] [dotted.key=value ...] [--flags]`, with one precedence:",
             "flags > overrides > file > defaults. Exit statuses: 0 done; 2 a user or environment error",
             "(one line naming the file, frame, atom or key; `--debug` shows the traceback); 3 done, but",
             "some items failed; 130 interrupted.", ""]
    for name, sub in subparsers(parser).items():
        lines += [f"## `ffpt {name}`", "", _cell((sub.description or "").split("\n", 1)[0]), ""]
        usage = sub.format_usage().replace("usage: ", "", 1).strip()
        lines += ["```text", textwrap.dedent(usage), "```", ""]
        epilog = (sub.description or "").split("\n", 1)
        if len(epilog) > 1 and epilog[1].strip():
            lines += ["```text", epilog[1].strip("\n"), "```", ""]
        if sub.epilog:
            lines += ["```text", sub.epilog.strip("\n"), "```", ""]
        configs = verb_configs(name)
        if configs:
            links = ", ".join(f"[`{c.rsplit('.', 1)[1]}`](config.md#{anchor(c)})" for c in configs)
            lines += [f"Config keys: {links}.", ""]
        lines += ["| argument | meaning | default |", "|---|---|---|"]
        lines += [_argument_row(a) for a in documented_actions(sub)]
        lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------- config


def type_name(annotation: Any) -> str:
    """``float | None``, ``list[Path]``, ``one of nve, langevin``: readable, without module paths."""
    if annotation is type(None):
        return "None"
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin in (Union, types.UnionType):
        return " or ".join(type_name(a) for a in args)
    if origin is typing.Annotated:
        return type_name(args[0])
    if origin is not None:
        return f"{getattr(origin, '__name__', str(origin))}[{', '.join(type_name(a) for a in args)}]"
    if annotation is Any:
        return "any"
    return getattr(annotation, "__name__", str(annotation).replace("typing.", ""))


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def default_text(field) -> str:
    if field.is_required():
        return "required"
    value = field.default_factory() if field.default_factory is not None else field.default
    if value is PydanticUndefined:
        return "required"
    if isinstance(value, BaseModel):
        return "(section below)"
    return json.dumps(_plain(value), default=str)


def field_comments(cls: type) -> dict[str, str]:
    """Comments on a class's field lines (trailing, or the comment lines just above), by field name."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    comments: dict[int, str] = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = token.string.lstrip("#").strip()
    lines = source.splitlines()
    found = {}
    body = ast.parse(source).body[0].body
    for node in body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            texts = []
            row = node.lineno - 1
            while row >= 1 and row in comments and lines[row - 1].lstrip().startswith("#"):
                texts.insert(0, comments[row])
                row -= 1
            if node.end_lineno in comments:
                texts.append(comments[node.end_lineno])
            if texts:
                found[node.target.id] = " ".join(texts)
    return found


def _descriptions(model: type[BaseModel]) -> dict[str, str]:
    out: dict[str, str] = {}
    for cls in reversed(model.__mro__):
        if isinstance(cls, type) and issubclass(cls, BaseModel) and cls is not BaseModel:
            out.update(field_comments(cls))
    for name, field in model.model_fields.items():
        if field.description:
            out[name] = field.description
    return out


def nested_models(annotation: Any) -> Iterator[tuple[str, type[BaseModel]]]:
    """Config models inside an annotation: ("", M) for M or M | None, ("[]", M) for list[M], ("{}", M) for dict[str, M]."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield "", annotation
        return
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (Union, types.UnionType):
        for arg in args:
            yield from nested_models(arg)
    elif origin in (list, tuple) and args:
        for suffix, model in nested_models(args[0]):
            yield "[]" + suffix, model
    elif origin is dict and len(args) == 2:
        for suffix, model in nested_models(args[1]):
            yield "{}" + suffix, model


def config_keys(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, type[BaseModel]]]:
    """(dotted prefix, model) of a model and of every section below it, depth first."""
    yield prefix, model
    for name, field in model.model_fields.items():
        for suffix, sub in nested_models(field.annotation):
            yield from config_keys(sub, f"{prefix}{name}{suffix}.")


def anchor(dotted_class: str) -> str:
    return dotted_class.rsplit(".", 1)[1].lower()


def model_table(model: type[BaseModel], prefix: str) -> list[str]:
    descriptions = _descriptions(model)
    doc = inspect.getdoc(model) or ""
    doc = "" if doc.startswith(("Usage docs", "!!! abstract")) or model.__doc__ is None else doc
    doc = " ".join(plain_roles(doc).split())
    lines = [f"### `{prefix.rstrip('.') or '(top level)'}`", "", f"`{model.__module__}.{model.__name__}`"
             + (f": {doc}" if doc else ""), "",
             "| key | type | default | description |", "|---|---|---|---|"]
    for name, field in model.model_fields.items():
        lines.append(f"| `{prefix}{name}` | {_cell(type_name(field.annotation))} | `{_cell(default_text(field))}` "
                     f"| {_cell(descriptions.get(name, ''))} |")
    return lines + [""]


def config_markdown() -> str:
    """Markdown of every verb's config model and its sections, then the architecture option models."""
    lines = ["# Configuration", "",
             "Generated from the pydantic models at every docs build. A key is set in the YAML file, as a",
             "dotted override after it (`training.lr=5e-4`, values read as YAML) or by the verb's flag;",
             "unknown keys and wrong types are errors naming the key. `[]` marks a list of sections.", ""]
    done: set[str] = set()
    sections = [(c, f"`ffpt {v}`") for v, classes in all_verb_configs().items() for c in classes]
    for dotted, _ in sections:
        if dotted in done:
            continue
        done.add(dotted)
        verbs = ", ".join(label for c, label in sections if c == dotted)
        model = load_class(dotted)
        lines += [f"## {model.__name__} {{#{anchor(dotted)}}}", "", f"Read by {verbs}.", ""]
        for prefix, sub in config_keys(model):
            lines += model_table(sub, prefix)
    for title, dotted in OPTION_MODELS.items():
        model = load_class(dotted)
        lines += [f"## {model.__name__} {{#{anchor(dotted)}}}", "", f"Keys of {title}.", ""]
        prefix = title.split(" ")[0] + "."
        for sub_prefix, sub in config_keys(model, prefix):
            lines += model_table(sub, sub_prefix)
    return "\n".join(lines)


def public_modules(package: str = "ffpt") -> list[str]:
    """Every module of the package whose dotted name has no part starting with '_' (the CLI excluded:
    its reference is the command-line page)."""
    import pkgutil

    root = importlib.import_module(package)
    names = [package] + [m.name for m in pkgutil.walk_packages(root.__path__, package + ".")]
    return sorted(n for n in names if not any(part.startswith("_") for part in n.split("."))
                  and not n.startswith(f"{package}.cli"))


def api_markdown() -> str:
    """The Python API page: mkdocstrings renders every public module from its docstrings."""
    lines = ["# Python API", "",
             "Generated from the docstrings of every public module (mkdocstrings). The one-call entry point",
             "is `ffpt.load_calculator`; every verb of the command line is a function of `ffpt.jobs` or",
             "`ffpt.workflows` with its config model.", ""]
    for name in public_modules():
        lines += [f"::: {name}", ""]
    return "\n".join(lines)


PAGES = {"reference/cli.md": cli_markdown, "reference/config.md": config_markdown, "reference/api.md": api_markdown}


ROOT = Path(__file__).resolve().parents[1]
FIGURES = "benchmarks/figures"


def benchmarks_markdown() -> str:
    """BENCHMARKS.md as a page of the site (the results page links its sections): its figure links
    stay (the figures are copied beside it); any other relative link becomes the path as code."""
    text = (ROOT / "BENCHMARKS.md").read_text()

    def keep_or_plain(match: re.Match) -> str:
        label, target = match.group(1), match.group(2)
        if target.startswith(("http://", "https://", "#", FIGURES + "/")):
            return match.group(0)
        return f"{label.lstrip('!')} (`{target}`)" if label.strip("![]") else f"`{target}`"

    return re.sub(r"(!?\[[^\]]*\])\(([^)\s]+)\)", keep_or_plain, text)


def on_files(files, config):
    """MkDocs hook: add the generated pages, BENCHMARKS.md and its figures to the site."""
    from mkdocs.structure.files import File

    for path, make in {**PAGES, "benchmarks.md": benchmarks_markdown}.items():
        files.append(File.generated(config, path, content=make()))
    for figure in sorted((ROOT / FIGURES).glob("*.png")):
        files.append(File.generated(config, f"{FIGURES}/{figure.name}", abs_src_path=str(figure)))
    return files


if __name__ == "__main__":  # write the pages for a look: python docs/gen_reference.py OUTDIR
    import sys

    out = Path(sys.argv[1] if len(sys.argv) > 1 else "reference")
    out.mkdir(parents=True, exist_ok=True)
    for path, make in PAGES.items():
        (out / Path(path).name).write_text(make())
