"""Argument types shared by the commands."""

from __future__ import annotations

import argparse

# a2sb.model.BAND_LEVELS, spelled out so that parsing arguments does not import torch (a test keeps them equal)
BAND_LEVEL_CHOICES = ("off", "match", "cap")


def numbers(text: str) -> list[float]:
    """An argparse type: comma-separated numbers ("0.5", "0.3,0.7"; empty items are skipped)."""
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def split_fractions(text: str) -> tuple[float, float, float]:
    """An argparse type: three non-negative fractions with a positive sum, e.g. 0.9,0.05,0.05."""
    try:
        parts = tuple(numbers(text))
    except argparse.ArgumentTypeError:
        parts = ()
    if len(parts) != 3 or min(parts) < 0 or sum(parts) <= 0:
        raise argparse.ArgumentTypeError(f"expected three fractions like 0.9,0.05,0.05, got {text!r}")
    return parts
