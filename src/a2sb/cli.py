"""Command-line entry point: `a2sb <command> ...`.

Each module that offers commands defines `add_commands(subparsers)`; this file only collects them,
so a command lives next to the code it drives.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .errors import A2SBError, print_error

COMMAND_MODULES = [
    "a2sb.commands_engine",
    "a2sb.pipeline",
    "a2sb.evaluate",
    "a2sb.data",
    "a2sb.train",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="a2sb", description="Restore music with Audio-to-Audio Schrodinger Bridges.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name == name:  # module not written yet
                continue
            raise
        module.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except A2SBError as err:
        return print_error(err)
    except KeyboardInterrupt:
        print("a2sb: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
