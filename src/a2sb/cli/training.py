"""`a2sb data`, `a2sb train` and `a2sb export`."""


def add_parser(sub) -> None:
    from ..data import add_commands as add_data
    from ..train import add_commands as add_train

    add_data(sub)
    add_train(sub)
