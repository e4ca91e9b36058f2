"""Cutoff detection on real music: a reduced version of experiments/detect_grid.py over the excerpts in
tests/data (freely licensed game music, see tests/data/README.md), with that script's truth, counting
rule and scoring. The full grid over the held-out packages and its figures: docs/experiments.md."""

from __future__ import annotations

import importlib.util
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from a2sb.detect import detect_cutoff, estimate_cutoff

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"


def _grid_module():
    spec = importlib.util.spec_from_file_location("detect_grid", ROOT / "experiments" / "detect_grid.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


grid = _grid_module()

REDUCED = dict(cutoffs=(2000, 4000, 5500, 8000, 11000), butter_orders=(4, 8, 12), cheby=((8, 0.5), (4, 1.0)),
               ellip=((6, 0.5, 60),), soxr_rates=(8000, 16000, 22050, 32000), soxr_qualities=("HQ",),
               mp3_kbps=(64, 128, 192))


def excerpt(track: str, kind: str) -> np.ndarray:
    audio, rate = sf.read(DATA / grid.excerpt_name(track, kind), dtype="float32", always_2d=True)
    assert rate == grid.RATE
    return audio.T


@pytest.fixture(scope="module")
def rows():
    out = []
    for i, (_, track, kind) in enumerate(grid.EXCERPTS):
        for row in grid.run_clip(excerpt(track, kind), detect_cutoff, seed=100 * i, **REDUCED):
            row.update(track=track, clip=kind)
            out.append(row)
    return out


def _report(rows) -> str:
    return "\n".join(f"{r['track']:>14} {r['clip']:>12} {r['label']:>24} truth {r['truth']:7.0f} "
                     f"B {r['bandwidth']:7.0f} found {r['found']!s:>9} {r['outcome']}"
                     for r in rows if r["outcome"] != "hit")


def test_excerpts_are_what_the_readme_says():
    assert len(grid.EXCERPTS) == 4
    total = sum((DATA / grid.excerpt_name(t, k)).stat().st_size for _, t, k in grid.EXCERPTS)
    assert total < 3_000_000
    for _, track, kind in grid.EXCERPTS:
        info = sf.info(DATA / grid.excerpt_name(track, kind))
        assert (info.samplerate, info.channels, info.subtype) == (44100, 1, "PCM_16")
        assert info.duration == pytest.approx(grid.EXCERPT_SECONDS)
    # one of them has little treble: its own band ends below 10 kHz
    bandwidths = {t: grid.own_bandwidth(excerpt(t, k)) for _, t, k in grid.EXCERPTS}
    assert min(bandwidths.values()) < 10000 < max(bandwidths.values())


def test_never_a_wrong_edge(rows):
    # counted cases: never more than 30 % off
    assert not [r for r in rows if r["counted"] and r["outcome"] == "wrong"], _report(rows)
    # the others: None, or between the filter's and the clip's own edge. One known failure (measured
    # 2026-12-03): on the dark valley excerpt (own band 8.6 kHz) a Chebyshev 4/1 dB at 11 kHz, which
    # removes nothing, is answered with a cliff at 4.4 kHz in the music itself.
    invented = [r for r in rows if not r["counted"] and r["outcome"] == "wrong"]
    assert len(invented) <= 1, _report(rows)


def test_hit_rates_on_real_music(rows):
    by_family = defaultdict(list)
    for r in rows:
        if r["counted"]:
            by_family[r["family"]].append(r["outcome"])
    rates = {family: float(np.mean([o == "hit" for o in outcomes])) for family, outcomes in by_family.items()}
    assert set(rates) == {"brickwall", "butter", "cheby1", "ellip", "soxr", "mp3"}, rates
    assert sum(len(h) for h in by_family.values()) >= 130, "the grid must not be mostly uncounted"
    # measured on these excerpts (2026-12-03, with the passband-slope rule of a2sb.detect, which trades
    # hits for "unsure" where the music already falls steeply below the knee): brick-wall 17/19, soxr
    # 13/14, MP3 2/2, elliptic 16/18, Chebyshev-I 27/37, Butterworth (orders 4, 8, 12) 21/52 with 21
    # unsure after the gentle-knee rules (before the slope rule: 19/19, 14/14, 2/2, 17/18, 32/37, 26/52;
    # the Butterworth bound has almost no slack, so a detector change must re-measure it). The targets of
    # issue 14 (95 % within 3 %) are met on the full grid by brick-wall and soxr only, see
    # docs/experiments.md
    assert rates["brickwall"] >= 0.89, (rates, _report(rows))
    assert rates["soxr"] >= 0.92, (rates, _report(rows))
    assert rates["mp3"] >= 0.95, (rates, _report(rows))
    assert rates["ellip"] >= 0.88, (rates, _report(rows))
    assert rates["cheby1"] >= 0.7, (rates, _report(rows))
    assert rates["butter"] >= 0.4, (rates, _report(rows))
    assert np.mean([o == "hit" for outcomes in by_family.values() for o in outcomes]) >= 0.66, rates
    # where the answer is not a hit it is mostly "unsure" or a near miss, never far off (above)
    # (30 unsure measured with the gentle-knee rules of a2sb.detect, GENTLE_ORDER and SHALLOW_FALL_DB)
    assert sum(o == "unsure" for outcomes in by_family.values() for o in outcomes) <= 30, rates


def test_dark_excerpt_counts_only_low_cutoffs(rows):
    dark = [r for r in rows if r["track"] == "valley.ogg"]
    assert all(r["bandwidth"] < 10000 for r in dark)
    assert {r["label"] for r in dark if r["counted"] and r["family"] == "brickwall"} == {
        "brickwall 2000", "brickwall 4000", "brickwall 5500", "brickwall 8000"}
    # where the lowpass is above what the excerpt holds, there is no cutoff to find at the lowpass
    assert all(r["found"] is None or r["found"] < 1.3 * 11000 for r in dark if r["label"].endswith(" 11000"))


def test_unsure_is_said_not_guessed():
    clean = excerpt("valley.ogg", "least treble")
    found = estimate_cutoff(clean, grid.RATE)
    assert found.cutoff is None and found.unsure and "Hz" in found.reason
    # a full-band excerpt has nothing to be unsure about: at most its own (Vorbis) edge near 19-20 kHz
    for track in ("overworld.ogg", "menutheme.ogg"):
        clean = excerpt(track, "typical")
        found = estimate_cutoff(clean, grid.RATE)
        assert not found.unsure, found
        assert found.cutoff is None or found.cutoff == pytest.approx(grid.own_bandwidth(clean), rel=0.1), found
