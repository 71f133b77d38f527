"""``ffpt <verb>``: a thin layer over the library.

Each module of this package is one verb: it defines ``HELP`` (one line), ``add_arguments(parser)``
and ``run(args) -> int``; heavy imports stay inside ``run``.

One error path: a :class:`ffpt.errors.UserError` raised anywhere (bad file, config key, frame,
atom, option) ends the verb with its one-line message on stderr and exit status 2, and so does an
operating-system error of the environment (permission denied, read-only or full file system, a
name too long: :data:`ffpt.fileio.ENVIRONMENT_ERRNOS`), named by its path; ``--debug`` shows the
traceback instead. Anything else is a bug and keeps its traceback.

Exit statuses: 0 done; 2 a user or environment error (nothing or only resumable work written);
3 done, but some items failed (e.g. ``ffpt label``: the frames that succeeded are written, the
failures reported); 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

EXIT_USER_ERROR = 2  # bad input or environment: one line naming the file, key, frame or atom
EXIT_PARTIAL = 3  # done, but some items failed (written: what succeeded; reported: the failures)


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
    from ffpt.fileio import describe_os_error, is_environment_error

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
        return EXIT_USER_ERROR
    except OSError as exc:
        if args.debug or not is_environment_error(exc):
            raise
        print(f"ffpt {args.verb}: error: {_one_line(describe_os_error(exc))}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"ffpt {args.verb}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
