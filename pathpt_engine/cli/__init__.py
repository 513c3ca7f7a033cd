"""`pathpt` command line.

Each command group lives in its own module with a `register(subparsers)` function. User errors
(`PathPTError`) and bad option values print one line on stderr and exit with status 2. Anything else is a bug:
one line naming it, exit 1, and the traceback only with `--debug`.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from ..errors import JobCancelled, PathPTError

# Command modules, in help order. Each defines register(subparsers) and sets `func` on its parsers.
_COMMAND_MODULES = ("slides_cmd", "synth_cmd", "backbone_cmd", "pathpt_cmd", "export_cmd", "demo_cmd",
                    "annotations_cmd")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pathpt",
        description="PathPT Studio engine: slides, features, zero-shot and few-shot prompt-tuning.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        module.register(sub)
    for command in sub.choices.values():  # `pathpt train ... --debug` works too (SUPPRESS keeps a global --debug)
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help="show tracebacks and debug logs")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        rc = args.func(args)
    except JobCancelled:
        print("pathpt: cancelled", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("pathpt: interrupted", file=sys.stderr)
        return 130
    except PathPTError as exc:
        if args.debug:
            raise
        print(f"pathpt: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug, not a user error: one line unless --debug
        if args.debug:
            raise
        print(f"pathpt: internal error ({type(exc).__name__}: {_one_line(exc)}); rerun with --debug for the "
              "traceback and report it", file=sys.stderr)
        return 1
    return int(rc or 0)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
