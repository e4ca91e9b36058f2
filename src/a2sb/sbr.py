"""Spectral band replication on the representation's STFT (2048-point, hop 512, 44.1 kHz).

Above 0.9·fc the spectrum is rebuilt from copies of the octave just below 0.9·fc, repeated upwards to
Nyquist. Every copy is shifted by a multiple of 4 bins: with hop = n_fft/4, a component moved up by k
bins turns 2π·k·hop/n_fft = π·k/2 radians further per frame, a whole number of turns when k is a
multiple of 4, so the shifted STFT is exactly the STFT of the frequency-shifted signal and needs no
phase correction. Copies are shaped by an envelope that is a line in dB against log2 frequency (the
slope fitted on [fc/4, 0.9·fc)), bending down by 3 dB/octave² above 0.9·fc, because real spectra fall
faster and faster towards Nyquist.

Torch, batched over any leading dimensions and deterministic: it is used on whole clips (the `sbr`
baseline) as well as on training batches and restoration windows as a prior.
"""

from __future__ import annotations

import math

import torch

from .errors import A2SBError
from .representation import N_FFT, SAMPLE_RATE, row_of_frequency

BIN_HZ = SAMPLE_RATE / N_FFT
N_BINS = N_FFT // 2 + 1
SHIFT_QUANTUM = 4  # bins: a shift by a multiple of n_fft/hop is a phase-coherent frequency shift
SOURCE_TOP = 0.9  # × cutoff: stay below the lowpass's transition band
FIT_BOTTOM = 0.25  # × cutoff: the slope is fitted on [fc/4, 0.9·fc), about two octaves
SLOPE_LIMITS_DB_PER_OCTAVE = (-12.0, 0.0)
CURVATURE_DB_PER_OCTAVE2 = -3.0
POWER_FLOOR = 1e-30  # keeps log10 finite on digital silence


def _first_bin_at_or_above(freq_hz: float) -> int:
    return math.ceil(freq_hz / BIN_HZ - 1e-9)  # 1e-9: a frequency on a bin centre counts as that bin


def _layout(cutoff_hz: float) -> tuple[int, int, int]:
    """(top, width, first_replaced): bins < top are kept, [top - width, top) is the copied octave,
    bins >= first_replaced (strictly above fc) are replaced by the copies, [top, first_replaced) is
    the transition band."""
    top = min(_first_bin_at_or_above(SOURCE_TOP * cutoff_hz), N_BINS)
    octave = top - _first_bin_at_or_above(SOURCE_TOP * cutoff_hz / 2)
    width = max(SHIFT_QUANTUM, SHIFT_QUANTUM * math.floor(octave / SHIFT_QUANTUM + 0.5))
    if top - width < 1:
        raise A2SBError(f"cutoff {cutoff_hz:g} Hz is too low for band replication (no source octave above DC)")
    return top, width, min(row_of_frequency(cutoff_hz) + 1, N_BINS)


def _log2_frequency(bins: torch.Tensor) -> torch.Tensor:
    return torch.log2(bins * BIN_HZ)


def sbr_slope(power: torch.Tensor, cutoff_hz: float) -> torch.Tensor:
    """Least-squares slope (dB/octave) of 10·log10(power) against log2 frequency on [fc/4, 0.9·fc).

    `power`: mean |S|² per bin over frames, (..., 1025). Returns (...), clipped to [-12, 0].
    """
    if power.shape[-1] != N_BINS:
        raise A2SBError(f"power must have {N_BINS} bins, got shape {tuple(power.shape)}")
    top, _, _ = _layout(cutoff_hz)
    bottom = max(_first_bin_at_or_above(FIT_BOTTOM * cutoff_hz), 1)
    if top - bottom < 2:
        raise A2SBError(f"cutoff {cutoff_hz:g} Hz leaves too few bins to fit a spectral slope")
    x = _log2_frequency(torch.arange(bottom, top, dtype=power.dtype, device=power.device))
    y = 10 * torch.log10(power[..., bottom:top] + POWER_FLOOR)
    x = x - x.mean()
    slope = (y * x).sum(-1) / (x * x).sum()  # Σ x(y − ȳ) = Σ x·y once x is centred
    return slope.clamp(*SLOPE_LIMITS_DB_PER_OCTAVE)


def sbr_spectrum(spec: torch.Tensor, cutoff_hz: float, slope: torch.Tensor | float | None = None) -> torch.Tensor:
    """Fill the band above 0.9·fc of a lowpassed STFT (complex, (..., 1025, W)) with shaped copies.

    Bins below 0.9·fc are returned unchanged. Target bin m ≥ 0.9·fc takes source bin
    s = top − width + (m − top) mod width of the octave [top − width, top) (width a multiple of 4 bins),
    scaled by 10^((L(f_m) − L(f_s))/20), L(f) = slope·log2 f − 3·max(0, log2 f − log2(0.9·fc))² dB.
    In the transition band [0.9·fc, fc] the input is kept and the copy C only tops it up where the
    input X is weaker: X + C·sqrt(max(0, 1 − |X|²/|C|²)) per bin and frame. Strictly above fc the copy
    replaces the input. `slope` (dB/octave, broadcast over the leading dimensions) defaults to
    `sbr_slope` of this spectrum's own mean power over frames.
    """
    if spec.shape[-2] != N_BINS or not spec.is_complex():
        raise A2SBError(f"spec must be a complex STFT with {N_BINS} bins, got {spec.dtype} {tuple(spec.shape)}")
    top, width, first_replaced = _layout(cutoff_hz)
    if top >= N_BINS:
        return spec.clone()
    real = spec.real.dtype
    if slope is None:
        slope = sbr_slope(spec.abs().square().mean(-1), cutoff_hz)
    slope = torch.as_tensor(slope, dtype=real, device=spec.device)

    targets = torch.arange(top, N_BINS, device=spec.device)
    sources = top - width + (targets - top) % width
    octaves_up = _log2_frequency(targets.to(real)) - _log2_frequency(sources.to(real))
    bend = (_log2_frequency(targets.to(real)) - math.log2(SOURCE_TOP * cutoff_hz)).clamp(min=0)
    gain_db = slope[..., None] * octaves_up + CURVATURE_DB_PER_OCTAVE2 * bend.square()  # sources need no bend
    copy = spec[..., sources, :] * (10 ** (gain_db / 20))[..., None]

    split = first_replaced - top
    given, filler = spec[..., top:first_replaced, :], copy[..., :split, :]
    copy_power = filler.abs().square()
    shortfall = 1 - given.abs().square() / torch.where(copy_power > 0, copy_power, torch.ones_like(copy_power))
    top_up = torch.where(copy_power > 0, shortfall, torch.zeros_like(shortfall)).clamp(min=0).sqrt()
    return torch.cat([spec[..., :top, :], given + filler * top_up, copy[..., split:, :]], dim=-2)
