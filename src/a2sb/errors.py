"""The one exception type that user-facing code raises for bad input or bad files."""


class A2SBError(Exception):
    """A problem the user can fix (bad file, bad option). The CLI prints it as one line and exits 2."""
