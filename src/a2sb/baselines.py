"""Training-free comparison methods for bandwidth extension and inpainting.

Every method has the signature `fn(audio, sample_rate, cutoff_hz=None, gaps=None) -> audio` with audio
float (channels, samples) (1-D also accepted); BWE methods need `cutoff_hz`, inpainting methods `gaps`
as [(start_s, end_s), ...]. Outputs are float32 with the input's shape.
"""

from __future__ import annotations

import numpy as np
import scipy.signal as sps
import torch

from .degrade import as_channels, gap_sample_ranges, insert_gaps, like_input
from .errors import A2SBError
from .representation import N_FFT, SAMPLE_RATE, istft, stft
from .sbr import SOURCE_TOP, sbr_spectrum


def _need_cutoff(cutoff_hz, sample_rate) -> float:
    if cutoff_hz is None:
        raise A2SBError("bandwidth extension needs a cutoff frequency")
    if not 0 < cutoff_hz:
        raise A2SBError(f"cutoff must be positive, got {cutoff_hz} Hz")
    return float(cutoff_hz)


# --------------------------------------------------------------------------------------------------
# Bandwidth extension


def bwe_lowpassed(audio, sample_rate: int, cutoff_hz: float | None = None, gaps=None) -> np.ndarray:
    """The degraded input itself: the floor every BWE method should beat."""
    x, was_1d = as_channels(audio, np.float64)
    return like_input(x, was_1d)


def bwe_sbr(audio, sample_rate: int, cutoff_hz: float | None = None, gaps=None) -> np.ndarray:
    """Spectral band replication (`a2sb.sbr.sbr_spectrum`) with the slope fitted on each whole channel.

    Copies of the octave below 0.9·fc, shifted by multiples of 4 STFT bins (exact frequency shifts) and
    shaped by the extrapolated spectral tilt, fill everything above 0.9·fc; in the transition band
    [0.9·fc, fc] they only top up bins where the input is weaker. Everything below 0.9·fc is returned
    exactly: only the part of the change above 0.9·fc is added to the input.
    """
    cutoff_hz = _need_cutoff(cutoff_hz, sample_rate)
    if sample_rate != SAMPLE_RATE:
        raise A2SBError(f"SBR works at {SAMPLE_RATE} Hz, got {sample_rate} Hz")
    x, was_1d = as_channels(audio, np.float64)
    if cutoff_hz >= sample_rate / 2 or x.shape[-1] < N_FFT:
        return like_input(x, was_1d)
    wave = torch.from_numpy(x)
    generated = istft(sbr_spectrum(stft(wave), cutoff_hz), length=x.shape[-1]).numpy()
    return like_input(x + _highpass_exact(generated - x, sample_rate, SOURCE_TOP * cutoff_hz), was_1d)


def _highpass_exact(x: np.ndarray, sample_rate: int, cutoff_hz: float) -> np.ndarray:
    """Zero every FFT bin at or below the cutoff, so adding the result never changes the known band."""
    n = x.shape[-1]
    spectrum = np.fft.rfft(x, axis=-1)
    spectrum[..., np.fft.rfftfreq(n, 1 / sample_rate) <= cutoff_hz] = 0
    return np.fft.irfft(spectrum, n=n, axis=-1)


# --------------------------------------------------------------------------------------------------
# Inpainting

LPC_ORDER = 256  # two poles per partial: rich harmonic tones need far more than speech's 10-50
LPC_CONTEXT_S = 0.15
SIMILARITY_CONTEXT_S = 0.25  # each side of the gap
CROSSFADE_S = 0.01


def _need_gaps(gaps, sample_rate, length) -> list[tuple[int, int]]:
    if gaps is None:
        raise A2SBError("inpainting needs gaps as [(start_s, end_s), ...]")
    return gap_sample_ranges(gaps, sample_rate, length)


def inpaint_silence(audio, sample_rate: int, cutoff_hz=None, gaps=None) -> np.ndarray:
    """Leave the gaps silent (zeroed): the floor every inpainting method should beat."""
    x, was_1d = as_channels(audio, np.float64)
    _need_gaps(gaps, sample_rate, x.shape[-1])
    return like_input(insert_gaps(x, sample_rate, gaps), was_1d)


def inpaint_lpc(audio, sample_rate: int, cutoff_hz=None, gaps=None, order: int = LPC_ORDER) -> np.ndarray:
    """Linear-prediction extrapolation into each gap from both sides, crossfaded.

    A Burg all-pole model of order `order` (256) is fitted to ~150 ms before the gap and extrapolated forward;
    another, fitted to the time-reversed ~150 ms after the gap, is extrapolated backward. The two are
    blended with a raised-cosine fade across the gap. Good for short gaps (tens of ms) in tonal music;
    long gaps fade towards silence because the extrapolation decays.
    """
    x, was_1d = as_channels(audio, np.float64)
    y = x.copy()
    context = int(LPC_CONTEXT_S * sample_rate)
    for first, last in _need_gaps(gaps, sample_rate, x.shape[-1]):
        for channel in y:
            channel[first:last] = _lpc_fill(channel, first, last, context, order)
    return like_input(y, was_1d)


def _lpc_fill(x: np.ndarray, first: int, last: int, context: int, order: int) -> np.ndarray:
    length = last - first
    left = x[max(first - context, 0) : first]
    right = x[last : last + context]
    forward = _extrapolate(left, length, order) if len(left) > 2 * order else None
    backward = _extrapolate(right[::-1], length, order)[::-1] if len(right) > 2 * order else None
    if forward is None and backward is None:
        return np.zeros(length)
    if forward is None:
        return backward
    if backward is None:
        return forward
    fade = 0.5 + 0.5 * np.cos(np.pi * (np.arange(length) + 0.5) / length)  # 1 -> 0
    return fade * forward + (1 - fade) * backward


def _extrapolate(past: np.ndarray, length: int, order: int) -> np.ndarray:
    """Continue `past` by `length` samples with its Burg all-pole model (zero excitation)."""
    if not np.any(past):
        return np.zeros(length)
    a = burg_lpc(past, order)
    state = sps.lfiltic([1.0], a, y=past[::-1][: len(a) - 1])
    future, _ = sps.lfilter([1.0], a, np.zeros(length), zi=state)
    return future


def burg_lpc(x: np.ndarray, order: int) -> np.ndarray:
    """Prediction polynomial [1, a1, ..., ap] by Burg's method (always a stable, minimum-phase model)."""
    x = np.asarray(x, dtype=np.float64)
    order = min(order, len(x) - 1)
    a = np.array([1.0])
    forward = x[1:].copy()
    backward = x[:-1].copy()
    for _ in range(order):
        denominator = np.dot(forward, forward) + np.dot(backward, backward)
        if denominator <= 0:
            break
        k = -2.0 * np.dot(forward, backward) / denominator
        a = np.concatenate([a, [0.0]])
        a = a + k * a[::-1]
        forward, backward = (forward + k * backward)[1:], (backward + k * forward)[:-1]
        if len(forward) == 0:
            break
    return a


def inpaint_similarity(audio, sample_rate: int, cutoff_hz=None, gaps=None) -> np.ndarray:
    """Fill each gap with the passage elsewhere in the recording whose surroundings match best.

    The 0.25 s before and after the gap form a template; every position in the recording whose
    surroundings (same offsets) avoid all gaps is scored by normalised cross-correlation of the mono
    mix, and the passage at the best position is copied in with 10 ms crossfades at both edges. Gaps
    with no usable candidate fall back to LPC.
    """
    x, was_1d = as_channels(audio, np.float64)
    n = x.shape[-1]
    ranges = _need_gaps(gaps, sample_rate, n)
    damaged = np.zeros(n, dtype=bool)
    for first, last in ranges:
        damaged[first:last] = True
    y = x.copy()
    context = int(SIMILARITY_CONTEXT_S * sample_rate)
    fade = int(CROSSFADE_S * sample_rate)
    for first, last in ranges:
        start = _best_match(y.mean(axis=0), damaged, first, last, context)
        if start is None:
            for channel in y:
                channel[first:last] = _lpc_fill(channel, first, last, int(LPC_CONTEXT_S * sample_rate), LPC_ORDER)
            continue
        _paste(y, start, first, last, fade)
    return like_input(y, was_1d)


def _best_match(mono: np.ndarray, damaged: np.ndarray, first: int, last: int, context: int) -> int | None:
    """Start of the passage (same length as the gap) whose context best matches the gap's context."""
    n = len(mono)
    length = last - first
    left_len = min(context, first)
    right_len = min(context, n - last)
    if left_len + right_len == 0:
        return None
    left = mono[first - left_len : first]
    right = mono[last : last + right_len]
    template_norm = np.sqrt(np.dot(left, left) + np.dot(right, right))
    if template_norm == 0:
        return None
    # Candidate start s uses mono[s - left_len : s + length + right_len]; s ranges over valid starts.
    starts = np.arange(left_len, n - length - right_len + 1)
    if len(starts) == 0:
        return None
    score = np.zeros(len(starts))
    energy = np.zeros(len(starts))
    power = np.concatenate([[0.0], np.cumsum(mono**2)])
    if left_len:
        score += sps.correlate(mono, left, mode="valid", method="fft")[starts - left_len]
        energy += power[starts] - power[starts - left_len]
    if right_len:
        score += sps.correlate(mono, right, mode="valid", method="fft")[starts + length]
        energy += power[starts + length + right_len] - power[starts + length]
    ncc = score / (np.sqrt(np.maximum(energy, 0)) * template_norm + 1e-12)
    # Exclude candidates whose passage or context touches any damaged sample (including this gap).
    touched = np.concatenate([[0], np.cumsum(damaged)])
    span_damage = touched[starts + length + right_len] - touched[starts - left_len]
    ncc[span_damage > 0] = -np.inf
    ncc[energy <= 0] = -np.inf
    best = int(np.argmax(ncc))
    return None if not np.isfinite(ncc[best]) else int(starts[best])


def _paste(y: np.ndarray, start: int, first: int, last: int, fade: int) -> None:
    """Copy y[start : start+gap] into the gap, crossfading `fade` samples of context on each side."""
    n = y.shape[-1]
    length = last - first
    fade_in = min(fade, first, start)
    fade_out = min(fade, n - last, n - (start + length))
    source = y[:, start - fade_in : start + length + fade_out].copy()
    target = slice(first - fade_in, last + fade_out)
    weight = np.ones(source.shape[-1])
    if fade_in:
        weight[:fade_in] = 0.5 - 0.5 * np.cos(np.pi * (np.arange(fade_in) + 0.5) / fade_in)
    if fade_out:
        weight[-fade_out:] = 0.5 + 0.5 * np.cos(np.pi * (np.arange(fade_out) + 0.5) / fade_out)
    y[:, target] = weight * source + (1 - weight) * y[:, target]


# --------------------------------------------------------------------------------------------------

BWE_METHODS = {"lowpassed": bwe_lowpassed, "sbr": bwe_sbr}
INPAINT_METHODS = {"silence": inpaint_silence, "lpc": inpaint_lpc, "similarity": inpaint_similarity}
