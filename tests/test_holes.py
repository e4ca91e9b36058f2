"""Codec hole detection (a2sb.holes): zeroed time-frequency blocks in noise are found, plain noise and
silence give none, the band limits are kept."""

import numpy as np
import torch

from a2sb.holes import HOLE_MIN_HZ, MARGIN_FRAMES, first_hole_row, hole_cells, hole_share
from a2sb.representation import N_ROWS, istft, row_of_frequency, stft


def _noise(seconds=3.0, seed=0, level=0.1):
    rng = np.random.default_rng(seed)
    return torch.from_numpy((level * rng.standard_normal((2, int(44100 * seconds)))).astype(np.float32))


def test_zeroed_blocks_in_noise_are_found_and_nothing_else():
    spec = stft(_noise())
    holes_truth = torch.zeros(N_ROWS, spec.shape[-1], dtype=torch.bool)
    blocks = [(row_of_frequency(3000), 8, 40, 3), (row_of_frequency(9000), 16, 90, 4),
              (row_of_frequency(12000), 6, 150, 2)]
    for row, rows, frame, frames in blocks:
        holes_truth[row:row + rows, frame:frame + frames] = True
    damaged = spec.clone()
    damaged[:, 1:][:, holes_truth] = 0  # picture row r is bin r + 1
    found = hole_cells(damaged, row_of_frequency(16000))
    assert bool(found[holes_truth].all())
    assert int((found & ~holes_truth).sum()) <= 0.002 * found.numel()
    assert not found[row_of_frequency(16000):].any()
    assert not found[:first_hole_row()].any()
    plain = hole_cells(spec, None)
    assert hole_share(plain) < 0.002


def test_a_decoded_waveform_keeps_its_holes_findable():
    # Holes through istft -> stft: the cells stay well below their neighbours (window overlap smears a
    # little), so most of a 6-frame block is found.
    spec = stft(_noise(seed=1))
    damaged = spec.clone()
    row = row_of_frequency(6000)
    damaged[:, 1 + row:1 + row + 20, 100:106] = 0
    wave = istft(damaged, length=int(44100 * 3.0))
    found = hole_cells(stft(wave), None)
    assert float(found[row + 2:row + 18, 102:104].float().mean()) > 0.8
    assert hole_share(found) < 0.01


def test_silence_and_quiet_passages_have_no_holes():
    silent = torch.zeros(2, 44100 * 2)
    assert not hole_cells(stft(silent)).any()
    quiet = _noise(level=1e-6)  # about -125 dB: below the silence floor
    quiet_spec = stft(quiet)
    quiet_spec[:, 200:220, 50:54] = 0
    assert not hole_cells(quiet_spec).any()


def test_margin_and_band_constants_are_consistent():
    assert MARGIN_FRAMES >= 1
    assert abs((first_hole_row() + 1) * 44100 / 2048 - HOLE_MIN_HZ) < 44100 / 2048
