"""experiments/level_vs_lsd.py: the per-octave statistics that explain the level bias target."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


@pytest.fixture(scope="module")
def level_vs_lsd():
    sys.path.insert(0, str(EXPERIMENTS))  # the script imports its sibling band_level.py
    try:
        spec = importlib.util.spec_from_file_location("level_vs_lsd", EXPERIMENTS / "level_vs_lsd.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(EXPERIMENTS))
    return module


def test_peakedness_of_white_noise_and_of_a_sparse_band(level_vs_lsd):
    rng = np.random.default_rng(0)
    # |complex Gaussian|² is exponential: E[ln X] = ln E[X] - γ, so 10·γ/ln 10 = 2.507 dB
    power = np.abs(rng.standard_normal((400, 500)) + 1j * rng.standard_normal((400, 500))) ** 2
    assert level_vs_lsd.peakedness_db(power).mean() == pytest.approx(10 * np.euler_gamma / np.log(10), abs=0.05)
    flat = np.full((3, 50), 0.2)
    np.testing.assert_allclose(level_vs_lsd.peakedness_db(flat), 0.0, atol=1e-9)
    sparse = np.full((1, 100), 1e-10)
    sparse[0, :10] = 1.0  # a tenth of the bins carry the power, the rest 100 dB down
    expected = 10 * np.log10(0.1 + 0.9e-10) - 0.9 * (-100.0)
    assert level_vs_lsd.peakedness_db(sparse)[0] == pytest.approx(expected, abs=1e-6)


def test_octave_scores_see_a_gain_as_bias_and_lsd_is_least_at_the_inverse_gain(level_vs_lsd):
    rng = np.random.default_rng(1)
    clean = rng.standard_normal((2, 44100)).astype(np.float32) * 0.1
    scores = level_vs_lsd.octave_scores(clean, clean * 10 ** (-6 / 20), 4000.0, gains_db=(0.0, 6.0, 12.0))
    assert scores.shape == (3, 6)  # 4-8, 8-16, 16-22.05 kHz
    np.testing.assert_allclose(scores[:, 0], -6.0, atol=0.01)  # bias of a 6 dB quieter copy
    np.testing.assert_allclose(scores[:, 1], scores[:, 2], atol=1e-3)  # same shape, same peakedness
    np.testing.assert_allclose(scores[:, 4], 0.0, atol=1e-3)  # +6 dB undoes the gain: LSD 0
    np.testing.assert_allclose(scores[:, 3], 0.6, atol=1e-3)  # 6 dB = 0.6 bels in every bin
