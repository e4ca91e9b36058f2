"""The exception types that user-facing code raises for bad input or bad files."""

import sys


class A2SBError(Exception):
    """A problem the user can fix (bad file, bad option). The CLI prints it as one line and exits 2."""


class OutputExists(A2SBError):
    """A file a restoration would write exists (`what`: "output" or "plot") and overwriting is off;
    `hint` says how to allow it (the API's words by default, the CLI gives its own)."""

    def __init__(self, path, what: str, hint: str = "pass overwrite=True to replace it"):
        self.path, self.what = path, what
        super().__init__(f"{what} {path} exists ({hint})")


def print_error(err: A2SBError) -> int:
    """Print `err` as the CLI does (one line on stderr); returns the exit status for it."""
    print(f"a2sb: error: {err}", file=sys.stderr)
    return 2


def reject_unknown_keys(given, known, what: str, list_known: bool = False) -> None:
    """Raise A2SBError naming every key of `given` not in `known`: a typo in a setting must not silently
    fall back to a default. `what` starts the message ("unknown prior setting(s)")."""
    unknown = sorted(set(given) - set(known))
    if unknown:
        hint = f" (known: {', '.join(known)})" if list_known else ""
        raise A2SBError(f"{what} {', '.join(unknown)}{hint}")
