"""`a2sb evaluate` and `a2sb bench`."""


def add_parser(sub) -> None:
    from ..evaluate import add_commands

    add_commands(sub)
