"""a2sb.cli.args: the comma-separated number types of the commands, and their use by the training CLI."""

import argparse

import pytest

from a2sb.cli import build_parser
from a2sb.cli.args import numbers, split_fractions


def test_numbers_and_split_fractions():
    assert numbers("0.3,0.7") == [0.3, 0.7] and numbers("0.5,") == [0.5] and numbers("") == []
    assert split_fractions("0.9,0.05,0.05") == (0.9, 0.05, 0.05)
    for bad in ("0.5,x", "1e"):
        with pytest.raises(argparse.ArgumentTypeError, match="comma-separated numbers"):
            numbers(bad)
    for bad in ("0.9,0.1", "1,-1,1", "0,0,0", "a,b,c"):
        with pytest.raises(argparse.ArgumentTypeError, match="three fractions"):
            split_fractions(bad)


def test_training_commands_parse_them(capsys):
    parser = build_parser()
    args = parser.parse_args(["export", "run_a", "run_b", "-o", "out", "--t-cutoffs", "0.5"])
    assert args.t_cutoffs == [0.5] and args.runs == ["run_a", "run_b"]
    args = parser.parse_args(["data", "manifest", "music", "-o", "m.csv", "--split", "0.8,0.1,0.1"])
    assert args.split == (0.8, 0.1, 0.1)
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(["data", "manifest", "music", "-o", "m.csv", "--split", "0.8,0.2"])
    assert exit_info.value.code == 2 and "three fractions" in capsys.readouterr().err
