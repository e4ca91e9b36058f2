"""`a2sb restore` and `a2sb info`."""


def add_parser(sub) -> None:
    from ..pipeline import add_commands

    add_commands(sub)
