"""`a2sb convert-checkpoint` and `a2sb model-info`."""


def add_parser(sub) -> None:
    from ..commands_engine import add_commands

    add_commands(sub)
