"""The pipeline's layering: no module of ``src/ffpt`` imports a later stage (DESIGN.md).

Every import counts, also those deferred inside functions, since they run all the same.
"""

from __future__ import annotations

import ast
from pathlib import Path

import ffpt

# Earlier stages first; a module may import its own stage and earlier ones only.
STAGES = [
    {"units", "keys", "errors", "config", "fileio", "execution"},
    {"data"},
    {"systems"},
    {"observables"},  # pure functions of frames (RDF, species, errors against labels): no plots
    {"dynamics"},  # the one MD engine, under FF-MD sampling and model MD alike
    {"teachers"},
    {"sampling"},
    {"models"},
    {"training"},
    {"simulate"},
    {"analysis"},
    {"jobs"},
    {"workflows"},
    {"cli", "__main__"},
]
RANK = {name: rank for rank, names in enumerate(STAGES) for name in names}
PACKAGE = Path(ffpt.__file__).parent


def _stage(module: str) -> str | None:
    """``ffpt.simulate.md`` -> ``simulate``; ``ffpt`` itself -> None (the package's public face)."""
    parts = module.split(".")
    return parts[1] if parts[0] == "ffpt" and len(parts) > 1 else None


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            if node.module == "ffpt":  # from ffpt import teachers
                found += [(node.lineno, f"ffpt.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return [(line, name) for line, name in found if name.startswith("ffpt")]


def _violations(package: Path = PACKAGE) -> list[str]:
    bad = []
    for path in sorted(package.rglob("*.py")):
        own = _stage("ffpt." + ".".join(path.relative_to(package).with_suffix("").parts))
        if own is None or own == "__init__":
            continue  # ffpt/__init__.py re-exports the public API
        if own not in RANK:
            bad.append(f"{path.relative_to(package)}: stage '{own}' is not in the layer table")
            continue
        for line, name in _imports(path):
            target = _stage(name)
            if target in RANK and RANK[target] > RANK[own]:
                bad.append(f"{path.relative_to(package)}:{line}: {own} imports later stage {name}")
    return bad


def test_every_package_module_has_a_stage():
    names = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.suffix == ".py" or (p / "__init__.py").exists()) and p.name != "__init__.py"}
    assert names - set(RANK) == set(), "add new top-level modules to STAGES"


def test_no_module_imports_a_later_stage():
    assert _violations() == []


def test_the_checker_sees_a_deferred_backward_import(tmp_path):
    (tmp_path / "simulate").mkdir()
    (tmp_path / "simulate" / "md.py").write_text(
        "from ffpt.data import bonds\n\ndef f():\n    from ffpt.analysis.fes import barrier\n"
    )
    assert _violations(tmp_path) == ["simulate/md.py:4: simulate imports later stage ffpt.analysis.fes"]
