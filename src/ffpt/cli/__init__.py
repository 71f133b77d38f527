"""``ffpt <verb>``: a thin layer over the library.

Each module of this package is one verb: it defines ``HELP`` (one line), ``add_arguments(parser)``
and ``run(args) -> int``; heavy imports stay inside ``run``.

One error path: a :class:`ffpt.errors.UserError` raised anywhere (bad file, config key, frame,
atom, option) ends the verb with its one-line message on stderr and exit status 2; ``--debug``
shows the traceback instead. Anything else is a bug and keeps its traceback.
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
        p.add_argument("--debug", action="store_true", help="show the traceback of user errors too")
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def _one_line(text: str) -> str:
    return " | ".join(line.strip() for line in str(text).splitlines() if line.strip())


def main(argv: list[str] | None = None) -> int:
    from ffpt.errors import UserError

    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # dotted.key=value words after flags: argparse leaves them over
        if not hasattr(args, "overrides") or any(word.startswith("-") for word in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = [*args.overrides, *extra]
    try:
        return int(args._run(args) or 0)
    except UserError as exc:
        if args.debug:
            raise
        print(f"ffpt {args.verb}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ffpt {args.verb}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
