"""Command-line entry point: `a2sb <command> ...` (also `python -m a2sb`).

Each module of this package adds its commands with `add_parser(subparsers)`; they are listed here
explicitly. A command module imports the heavy parts of the package (torch, the network) inside the
function that runs the command, so that building the parser (`a2sb --help`) stays fast.
"""

from __future__ import annotations

import argparse
import sys

from .. import __version__
from ..errors import A2SBError, print_error
from . import app, bench, checkpoints, restore, training

COMMANDS = (restore, checkpoints, bench, training, app)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="a2sb", description="Restore music with Audio-to-Audio Schrodinger Bridges.")
    parser.add_argument("--version", action="version", version=f"a2sb {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.add_parser(sub)
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
