"""``ffpt <verb>``: a thin layer over the library.

Each module of this package is one verb: it defines ``HELP`` (one line), ``add_arguments(parser)``
and ``run(args) -> int``; heavy imports stay inside ``run``.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys


def _verbs():
    import ffpt.cli as package

    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            yield info.name.replace("_", "-"), importlib.import_module(f"ffpt.cli.{info.name}")


def build_parser() -> argparse.ArgumentParser:
    from ffpt import __version__

    parser = argparse.ArgumentParser(prog="ffpt", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"ffpt {__version__}")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for name, module in _verbs():
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
