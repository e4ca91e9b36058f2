"""Objective quality metrics for restored music (docs/method.md §Metrics, plus a few common extras).

All functions take a reference and an estimate as 1-D arrays or (channels, samples) arrays at
`sample_rate` (44.1 kHz by default). Multi-channel input is mixed to mono (mean of channels) unless
`per_channel=True`, in which case a list with one value per channel is returned. Lengths may differ by
fewer than 100 samples (both are cut to the shorter one); larger differences are an error.

The paper's three spectrogram metrics follow the formulas of its evaluation package exactly (EPS
placement and averaging order), but are computed in float64, so they agree with it to float32 rounding.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.ndimage import uniform_filter

from .errors import A2SBError

EPS = 1e-12
MAX_LENGTH_DIFFERENCE = 100
DEFAULT_RATE = 44100
BAND_LIMIT_HZ = 16000.0  # upper edge of lsd_16k / gap_lsd_16k
MRSTFT_SIZES = (512, 1024, 2048)
# Mean |STFT|² per bin below which a reference band counts as silent: far under the quantisation noise
# of 16-bit audio (≈ 6e-8 per bin in this unnormalised STFT), so only digital silence is excluded.
SILENT_POWER = 1e-10
POWER_FLOOR = 1e-20  # keeps the log of an empty estimated band finite (≈ -100 dB below SILENT_POWER)
# A reference cell (frame, bin) counts as empty when its power is more than EMPTY_BELOW_DB under the loudest
# cell of the same octave band in that channel (or digitally silent): bias_ne_db scores only the other cells.
EMPTY_BELOW_DB = 60.0
# Onset envelope: log power floored this far below the reference's mean power in the same bin, so that what is
# far below the reference's level there (a lowpass filter's residue) has no onsets.
ONSET_FLOOR_DB = 40.0
HOLE_DB = 15.0  # a codec hole: a cell below the cutoff where the decode is at least this far below the reference


# --------------------------------------------------------------------------------------------------
# Input handling and the spectrogram


def _prepare(ref, est, per_channel: bool) -> list[tuple[np.ndarray, np.ndarray]]:
    """Validate, cut to a common length and return (ref, est) float64 1-D pairs (one per channel)."""
    ref = np.asarray(ref, dtype=np.float64)
    est = np.asarray(est, dtype=np.float64)
    for name, x in (("reference", ref), ("estimate", est)):
        if x.ndim not in (1, 2):
            raise A2SBError(f"{name} audio must be 1-D or (channels, samples), got shape {x.shape}")
    ref2 = ref[None] if ref.ndim == 1 else ref
    est2 = est[None] if est.ndim == 1 else est
    difference = abs(ref2.shape[-1] - est2.shape[-1])
    if difference >= MAX_LENGTH_DIFFERENCE:
        raise A2SBError(
            f"reference and estimate lengths differ by {difference} samples "
            f"({ref2.shape[-1]} vs {est2.shape[-1]}); at most {MAX_LENGTH_DIFFERENCE - 1} is allowed"
        )
    n = min(ref2.shape[-1], est2.shape[-1])
    if n == 0:
        raise A2SBError("cannot score empty audio")
    ref2, est2 = ref2[:, :n], est2[:, :n]
    if not per_channel:
        return [(ref2.mean(axis=0), est2.mean(axis=0))]
    if ref2.shape[0] != est2.shape[0]:
        raise A2SBError(f"channel counts differ: reference {ref2.shape[0]}, estimate {est2.shape[0]}")
    return list(zip(ref2, est2))


def _apply(ref, est, per_channel: bool, fn):
    """fn(ref_1d, est_1d) on the mono mix (a float) or on each channel (a list)."""
    values = [fn(r, e) for r, e in _prepare(ref, est, per_channel)]
    return values if per_channel else values[0]


def stft_params(sample_rate: int = DEFAULT_RATE) -> tuple[int, int]:
    """(n_fft, hop) of the evaluation package: 2048 and 441 at 44.1 kHz."""
    return int(2048 / (44100 / sample_rate)), int(sample_rate / 100)


def spectrogram(signal: np.ndarray, n_fft: int = 2048, hop: int = 441, magnitude: bool = True) -> np.ndarray:
    """STFT as (frames, n_fft//2 + 1), equal to librosa.stft(center=True, pad_mode='constant').

    Periodic Hann window of length n_fft, n_fft//2 zeros on both sides, 1 + len//hop frames. The
    magnitude by default; `magnitude=False` keeps the complex values.
    """
    x = np.asarray(signal, dtype=np.float64)
    padded = np.pad(x, n_fft // 2)
    frames = 1 + (len(padded) - n_fft) // hop
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    out = np.empty((frames, n_fft // 2 + 1), dtype=np.float64 if magnitude else np.complex128)
    view = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]
    block = 512  # frames per FFT call: bounds the temporary memory for long files
    for first in range(0, frames, block):
        spec = np.fft.rfft(view[first : first + block] * window, axis=-1)
        out[first : first + block] = np.abs(spec) if magnitude else spec
    return out


def magnitude_spectrogram(signal: np.ndarray, n_fft: int = 2048, hop: int = 441) -> np.ndarray:
    """|STFT| as (frames, n_fft//2 + 1): `spectrogram` with its defaults."""
    return spectrogram(signal, n_fft, hop)


# --------------------------------------------------------------------------------------------------
# Formulas on magnitude spectrograms (R = reference, E = estimate; shape frames x bins)


def _lsd_per_frame(R: np.ndarray, E: np.ndarray) -> np.ndarray:
    # F27: log10 of the power ratio ("bels"); EPS on E before squaring and again inside the log.
    log_ratio = np.log10(R**2 / (E + EPS) ** 2 + EPS)
    return np.sqrt(np.mean(log_ratio**2, axis=-1))


def _sispec(E: np.ndarray, R: np.ndarray) -> float:
    # F28: scale-invariant SNR over all time-frequency bins, in dB.
    alpha = np.sum(E * R) / (np.sum(R**2) + EPS)
    target = alpha * R
    noise = E - target
    return float(10 * np.log10(np.sum(target**2) / (np.sum(noise**2) + EPS) + EPS))


def _log_sispec(E: np.ndarray, R: np.ndarray) -> float:
    return _sispec(np.log10(E + EPS), np.log10(R + EPS))  # F29


def _ssim(R: np.ndarray, E: np.ndarray, win_size: int = 7) -> float:
    """Mean SSIM of two magnitude images (uniform 7x7 window, sample covariance, 3-bin border dropped)."""
    data_range = max(R.max(), E.max()) - min(R.min(), E.min())
    if data_range == 0:
        return 1.0
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    count = win_size**2
    cov_norm = count / (count - 1)
    mu_r, mu_e = uniform_filter(R, win_size), uniform_filter(E, win_size)
    var_r = cov_norm * (uniform_filter(R * R, win_size) - mu_r**2)
    var_e = cov_norm * (uniform_filter(E * E, win_size) - mu_e**2)
    cov = cov_norm * (uniform_filter(R * E, win_size) - mu_r * mu_e)
    index = ((2 * mu_r * mu_e + c1) * (2 * cov + c2)) / ((mu_r**2 + mu_e**2 + c1) * (var_r + var_e + c2))
    border = (win_size - 1) // 2
    inner = index[border:-border, border:-border]
    return float(inner.mean()) if inner.size else float(index.mean())


def _high_bins(cutoff_hz: float, n_fft: int, sample_rate: int) -> slice:
    first = int(np.floor(cutoff_hz * n_fft / sample_rate)) + 1  # first bin strictly above the cutoff
    if first > n_fft // 2:
        raise A2SBError(f"cutoff {cutoff_hz} Hz leaves no frequency bins below Nyquist ({sample_rate / 2} Hz)")
    return slice(max(first, 0), None)


def _bins_up_to(limit_hz: float, n_fft: int, sample_rate: int) -> slice:
    return slice(0, min(int(np.floor(limit_hz * n_fft / sample_rate)) + 1, n_fft // 2 + 1))


def _gap_frames(gaps, hop: int, frames: int, sample_rate: int) -> np.ndarray:
    """Boolean mask of the frames whose centre (frame t centred at sample t·hop) lies inside a gap."""
    centres = np.arange(frames) * hop
    selected = np.zeros(frames, dtype=bool)
    for first, last in _gap_samples(gaps, sample_rate, frames * hop + hop):
        selected |= (centres >= first) & (centres < last)
    return selected


def _gap_samples(gaps, sample_rate: int, length: int) -> list[tuple[int, int]]:
    ranges = []
    for start, end in gaps:
        if not 0 <= start < end:
            raise A2SBError(f"bad gap {start}-{end} s: need 0 <= start < end")
        first, last = int(round(start * sample_rate)), min(int(round(end * sample_rate)), length)
        if last > first:
            ranges.append((first, last))
    if not ranges:
        raise A2SBError("no gap lies inside the audio")
    return ranges


def octave_bands(cutoff_hz: float, sample_rate: int = DEFAULT_RATE) -> list[tuple[float, float]]:
    """[fc·2^k, fc·2^(k+1)) for k = 0, 1, ... up to Nyquist; the last band is clipped at (and includes) Nyquist."""
    nyquist = sample_rate / 2
    if not 0 < cutoff_hz < nyquist:
        raise A2SBError(f"cutoff {cutoff_hz} Hz must lie between 0 and Nyquist ({nyquist} Hz)")
    bands, low = [], float(cutoff_hz)
    while low < nyquist:
        bands.append((low, min(2 * low, nyquist)))
        low *= 2
    return bands


def _octave_bias(R: np.ndarray, E: np.ndarray, cutoff_hz: float, n_fft: int, sample_rate: int) -> np.ndarray:
    """Per octave above the cutoff: mean over the frames where R's band is not silent of
    10·log10(band power of E / band power of R), in dB (NaN if every frame is silent)."""
    freqs = np.arange(n_fft // 2 + 1) * sample_rate / n_fft
    bias = []
    for low, high in octave_bands(cutoff_hz, sample_rate):
        band = (freqs >= low) & ((freqs < high) | (freqs == sample_rate / 2))
        reference, estimate = np.mean(R[:, band] ** 2, axis=1), np.mean(E[:, band] ** 2, axis=1)
        loud = reference >= SILENT_POWER
        ratio_db = 10 * np.log10((estimate[loud] + POWER_FLOOR) / reference[loud])
        bias.append(float(np.mean(ratio_db)) if loud.any() else np.nan)
    return np.array(bias)


def _octave_masks(cutoff_hz: float, n_fft: int, sample_rate: int) -> list[np.ndarray]:
    """Boolean bin masks of the octave bands above the cutoff (those of `_octave_bias`)."""
    freqs = np.arange(n_fft // 2 + 1) * sample_rate / n_fft
    return [(freqs >= low) & ((freqs < high) | (freqs == sample_rate / 2))
            for low, high in octave_bands(cutoff_hz, sample_rate)]


def _octave_bias_nonempty(R: np.ndarray, E: np.ndarray, cutoff_hz: float, n_fft: int, sample_rate: int) -> np.ndarray:
    """`_octave_bias` on the reference's non-empty cells only: per octave, the cells whose reference power is
    at least SILENT_POWER and within EMPTY_BELOW_DB of the octave's loudest reference cell; per frame
    10·log10(Σ E² / Σ R²) over those cells, then the mean over the frames that have any (NaN if none)."""
    bias = []
    for band in _octave_masks(cutoff_hz, n_fft, sample_rate):
        reference, estimate = R[:, band] ** 2, E[:, band] ** 2
        full = reference >= max(reference.max(initial=0.0) * 10 ** (-EMPTY_BELOW_DB / 10), SILENT_POWER)
        frames = full.any(axis=1)
        if not frames.any():
            bias.append(np.nan)
            continue
        ref_power = np.where(full, reference, 0.0).sum(axis=1)[frames]
        est_power = np.where(full, estimate, 0.0).sum(axis=1)[frames]
        bias.append(float(np.mean(10 * np.log10((est_power + POWER_FLOOR) / ref_power))))
    return np.array(bias)


def _octave_lsd(R: np.ndarray, E: np.ndarray, cutoff_hz: float, n_fft: int, sample_rate: int) -> list[float]:
    """LSD over the bins of each octave band above the cutoff."""
    return [float(np.mean(_lsd_per_frame(R[:, band], E[:, band]))) for band in _octave_masks(cutoff_hz, n_fft,
                                                                                              sample_rate)]


def _onset_envelope(S: np.ndarray, floor: np.ndarray) -> np.ndarray:
    """Positive spectral flux of 10·log10(S² + floor), summed over the bins of S, per frame (frame 0: 0)."""
    log_power = 10 * np.log10(S**2 + floor)
    flux = np.maximum(np.diff(log_power, axis=0), 0.0).sum(axis=1)
    return np.concatenate([[0.0], flux])


def _onset_corr(R: np.ndarray, E: np.ndarray, bins: slice) -> float:
    """Pearson correlation of the onset envelopes of R and E over `bins` (NaN if the reference's is flat,
    0 if only the estimate's is)."""
    high_r, high_e = R[:, bins], E[:, bins]
    floor = np.maximum(np.mean(high_r**2, axis=0) * 10 ** (-ONSET_FLOOR_DB / 10), POWER_FLOOR)  # per bin
    env_r, env_e = _onset_envelope(high_r, floor), _onset_envelope(high_e, floor)
    if len(env_r) < 3 or np.ptp(env_r) == 0:
        return float("nan")
    if np.ptp(env_e) == 0:
        return 0.0
    return float(np.corrcoef(env_r, env_e)[0, 1])


def _hole_scores(R: np.ndarray, D: np.ndarray, E: np.ndarray, cutoff_hz: float, n_fft: int,
                 sample_rate: int) -> dict:
    """lsd_below, hole_share and hole_lsd (see `codec_scores`) from magnitude spectrograms."""
    below = slice(0, _high_bins(cutoff_hz, n_fft, sample_rate).start)
    r, d, e = R[:, below], D[:, below], E[:, below]
    holes = (d**2 <= r**2 * 10 ** (-HOLE_DB / 10)) & (r**2 >= SILENT_POWER)
    if holes.any():
        log_ratio = np.log10(r[holes] ** 2 / (e[holes] + EPS) ** 2 + EPS)
        hole_lsd = float(np.sqrt(np.mean(log_ratio**2)))
    else:
        hole_lsd = float("nan")
    return {"lsd_below": float(np.mean(_lsd_per_frame(r, e))), "hole_share": float(holes.mean()),
            "hole_lsd": hole_lsd}


def _mean_ignoring_nan(values: np.ndarray, axis: int) -> np.ndarray:
    finite = np.isfinite(values)
    count = finite.sum(axis=axis)
    total = np.where(finite, values, 0.0).sum(axis=axis)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _msc(spectra: list[np.ndarray]) -> np.ndarray:
    """Magnitude-squared coherence per bin of the first two channels' STFTs (Welch: averages over frames)."""
    left, right = spectra[0], spectra[1]
    cross = np.abs(np.mean(left * np.conj(right), axis=0)) ** 2
    powers = np.mean(np.abs(left) ** 2, axis=0) * np.mean(np.abs(right) ** 2, axis=0)
    return cross / np.maximum(powers, POWER_FLOOR**2)


def _channel_pairs(ref, est) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per-channel (ref, est) pairs cut to a common length; the mono mixes when the channel counts differ."""
    same = np.atleast_2d(np.asarray(ref)).shape[0] == np.atleast_2d(np.asarray(est)).shape[0]
    return _prepare(ref, est, per_channel=same)


def _complex_spectrograms(pairs, sample_rate: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    n_fft, hop = stft_params(sample_rate)
    return ([spectrogram(r, n_fft, hop, magnitude=False) for r, _ in pairs],
            [spectrogram(e, n_fft, hop, magnitude=False) for _, e in pairs])


def _level_bias_scores(R: list, E: list, cutoff_hz: float, sample_rate: int, nonempty: bool = False) -> np.ndarray:
    """(channels, octaves) bias in dB from per-channel complex spectrograms (on the reference's non-empty
    cells only with `nonempty`)."""
    n_fft = stft_params(sample_rate)[0]
    bias = _octave_bias_nonempty if nonempty else _octave_bias
    return np.array([bias(np.abs(r), np.abs(e), cutoff_hz, n_fft, sample_rate) for r, e in zip(R, E)])


def _coherence_scores(R: list, E: list, cutoff_hz: float, sample_rate: int) -> dict:
    nan = {"coherence": np.nan, "coherence_ref": np.nan, "coherence_diff": np.nan}
    if len(R) < 2:
        return nan
    high = _high_bins(cutoff_hz, stft_params(sample_rate)[0], sample_rate)
    # Only bins where the reference has sound in both channels: coherence of digital silence means nothing.
    audible = np.all([np.mean(np.abs(r[:, high]) ** 2, axis=0) >= SILENT_POWER for r in R[:2]], axis=0)
    if not audible.any():
        return nan
    restored = float(np.mean(_msc(E)[high][audible]))
    reference = float(np.mean(_msc(R)[high][audible]))
    return {"coherence": restored, "coherence_ref": reference, "coherence_diff": restored - reference}


def _high_band_scores(R: list, E: list, cutoff_hz: float, sample_rate: int, per_channel: bool) -> dict:
    """compute_metrics' keys for the band above the cutoff: bias_db, bias_db_oct1..., bias_ne_db,
    bias_ne_db_oct1..., coherence*."""
    scores = {}
    for name, nonempty in (("bias_db", False), ("bias_ne_db", True)):
        bias = _level_bias_scores(R, E, cutoff_hz, sample_rate, nonempty)  # channels x octaves
        per_octave = bias if per_channel else _mean_ignoring_nan(bias, axis=0)[None]
        overall = _mean_ignoring_nan(per_octave, axis=1)
        scores[name] = [float(v) for v in overall]
        for k in range(bias.shape[1]):
            scores[f"{name}_oct{k + 1}"] = [float(v) for v in per_octave[:, k]]
    if not per_channel:
        scores = {key: value[0] for key, value in scores.items()}
    return {**scores, **_coherence_scores(R, E, cutoff_hz, sample_rate)}


# --------------------------------------------------------------------------------------------------
# Public metrics


def _on_magnitudes(ref, est, sample_rate: int, per_channel: bool, score):
    """score(|STFT| of the reference, |STFT| of the estimate) on the mono mix or on each channel."""
    n_fft, hop = stft_params(sample_rate)

    def one(r, e):
        return score(magnitude_spectrogram(r, n_fft, hop), magnitude_spectrogram(e, n_fft, hop))

    return _apply(ref, est, per_channel, one)


def lsd(ref, est, sample_rate: int = DEFAULT_RATE, per_channel: bool = False):
    """Log-spectral distance (F27), in bels; 0 for identical signals, lower is better."""
    return _on_magnitudes(ref, est, sample_rate, per_channel, lambda r, e: float(np.mean(_lsd_per_frame(r, e))))


def sispec(ref, est, sample_rate: int = DEFAULT_RATE, per_channel: bool = False):
    """Scale-invariant spectrogram SNR (F28), in dB; higher is better."""
    return _on_magnitudes(ref, est, sample_rate, per_channel, lambda r, e: _sispec(e, r))


def log_sispec(ref, est, sample_rate: int = DEFAULT_RATE, per_channel: bool = False):
    """SiSpec of the log10 magnitudes (F29), in dB; higher is better. Not invariant to gain."""
    return _on_magnitudes(ref, est, sample_rate, per_channel, lambda r, e: _log_sispec(e, r))


def ssim(ref, est, sample_rate: int = DEFAULT_RATE, per_channel: bool = False):
    """SSIM of the linear magnitude spectrograms (F30); 1 for identical signals."""
    return _on_magnitudes(ref, est, sample_rate, per_channel, _ssim)


def _band_lsd(ref, est, bins: slice, sample_rate: int, per_channel: bool):
    """LSD over the frequency bins `bins` only."""
    return _on_magnitudes(ref, est, sample_rate, per_channel,
                          lambda r, e: float(np.mean(_lsd_per_frame(r[:, bins], e[:, bins]))))


def lsd_high(ref, est, cutoff_hz: float, sample_rate: int = DEFAULT_RATE, per_channel: bool = False):
    """LSD over the frequency bins strictly above `cutoff_hz` only: the band a BWE method must invent."""
    bins = _high_bins(cutoff_hz, stft_params(sample_rate)[0], sample_rate)
    return _band_lsd(ref, est, bins, sample_rate, per_channel)


def lsd_16k(ref, est, sample_rate: int = DEFAULT_RATE, per_channel: bool = False):
    """LSD over the bins up to 16 kHz only. Not in the paper: a second figure for references that are
    nearly digital silence above 16 kHz (lossy-coded sources), where full-band LSD is dominated by how
    much a method puts into those empty bins rather than by what it does to audible content."""
    bins = _bins_up_to(BAND_LIMIT_HZ, stft_params(sample_rate)[0], sample_rate)
    return _band_lsd(ref, est, bins, sample_rate, per_channel)


def gap_lsd(ref, est, gaps: Sequence[tuple[float, float]], sample_rate: int = DEFAULT_RATE, per_channel=False):
    """LSD averaged over the frames centred inside the gaps [(start_s, end_s), ...] only."""
    n_fft, hop = stft_params(sample_rate)

    def one(r, e):
        R, E = magnitude_spectrogram(r, n_fft, hop), magnitude_spectrogram(e, n_fft, hop)
        frames = _gap_frames(gaps, hop, len(R), sample_rate)
        if not frames.any():
            raise A2SBError("the gaps are too short to contain a spectrogram frame centre")
        return float(np.mean(_lsd_per_frame(R[frames], E[frames])))

    return _apply(ref, est, per_channel, one)


def gap_snr(ref, est, gaps: Sequence[tuple[float, float]], sample_rate: int = DEFAULT_RATE, per_channel=False):
    """Waveform SNR in dB over the samples inside the gaps (not scale invariant: level errors count)."""

    def one(r, e):
        ranges = _gap_samples(gaps, sample_rate, len(r))
        r_gap = np.concatenate([r[a:b] for a, b in ranges])
        e_gap = np.concatenate([e[a:b] for a, b in ranges])
        return float(10 * np.log10((np.sum(r_gap**2) + EPS) / (np.sum((r_gap - e_gap) ** 2) + EPS)))

    return _apply(ref, est, per_channel, one)


def si_sdr(ref, est, per_channel: bool = False):
    """Scale-invariant signal-to-distortion ratio of the waveforms, in dB (no mean removal)."""

    def one(r, e):
        alpha = np.dot(e, r) / (np.dot(r, r) + EPS)
        target = alpha * r
        return float(10 * np.log10((np.sum(target**2) + EPS) / (np.sum((e - target) ** 2) + EPS)))

    return _apply(ref, est, per_channel, one)


def mrstft(ref, est, fft_sizes: Sequence[int] = MRSTFT_SIZES, per_channel: bool = False):
    """Multi-resolution STFT distance: mean over FFT sizes of spectral convergence + mean |Δ ln magnitude|.

    Hann windows of each size with hop size/4; 0 for identical signals, lower is better.
    """

    def one(r, e):
        total = 0.0
        for n_fft in fft_sizes:
            R = magnitude_spectrogram(r, n_fft, n_fft // 4)
            E = magnitude_spectrogram(e, n_fft, n_fft // 4)
            convergence = np.linalg.norm(R - E) / max(np.linalg.norm(R), EPS)
            log_distance = np.mean(np.abs(np.log(np.maximum(R, 1e-7)) - np.log(np.maximum(E, 1e-7))))
            total += convergence + log_distance
        return float(total / len(fft_sizes))

    return _apply(ref, est, per_channel, one)


def level_bias(ref, est, cutoff_hz: float, sample_rate: int = DEFAULT_RATE, per_channel: bool = False,
               nonempty: bool = False):
    """Level bias of the band above the cutoff, per octave, in dB (+3 = twice the reference's power).

    For each octave band [fc·2^k, fc·2^(k+1)) (the last clipped at Nyquist, which it includes) and each
    frame of the metric STFT, 10·log10(Σ|E|² / Σ|R|²) over the band's bins; then the mean over the
    frames whose reference band is not silent (mean |R|² per bin ≥ SILENT_POWER). Computed on each
    channel separately, not on the mono mix (so that level is not confused with inter-channel
    coherence, which the mono mix folds in); without `per_channel` the mean over channels. Returns an
    array with one value per octave ((channels, octaves) with `per_channel=True`); NaN for an octave
    that is silent in every frame. Channel counts that differ are scored on the mono mixes.

    With `nonempty=True` (bias_ne_db): only the reference's non-empty cells count, per octave and
    channel the (frame, bin) cells whose reference power is within EMPTY_BELOW_DB (60 dB) of the
    octave's loudest reference cell and not digitally silent; per frame the ratio of the estimate's to
    the reference's power summed over those cells, then the mean over the frames that have any. What an
    estimate puts where the reference is empty (a lossy reference's cut top octave) does not count.
    """
    R, E = _complex_spectrograms(_channel_pairs(ref, est), sample_rate)
    bias = _level_bias_scores(R, E, cutoff_hz, sample_rate, nonempty)
    return bias if per_channel else _mean_ignoring_nan(bias, axis=0)


def band_coherence(ref, est, cutoff_hz: float, sample_rate: int = DEFAULT_RATE) -> dict:
    """Inter-channel coherence of the band above the cutoff: does a restoration keep the stereo image?

    Magnitude-squared coherence |mean_t L·R*|² / (mean_t |L|² · mean_t |R|²) between the first two
    channels, per bin of the metric STFT (a Welch estimate over the whole signal), averaged over the
    bins strictly above the cutoff where both reference channels are not silent (mean power per bin
    ≥ SILENT_POWER). 1 for identical channels, 0 for independent ones (the estimate is biased up by
    roughly the inverse of the number of independent frames). Returns {"coherence": of the estimate,
    "coherence_ref": of the reference, "coherence_diff": their difference}; NaN for mono.
    """
    R, E = _complex_spectrograms(_channel_pairs(ref, est), sample_rate)
    return _coherence_scores(R, E, cutoff_hz, sample_rate)


def octave_lsd(ref, est, cutoff_hz: float, sample_rate: int = DEFAULT_RATE, per_channel: bool = False):
    """LSD over the bins of each octave band above the cutoff (the bands of `level_bias`, `octave_bands`):
    a list with one value per octave (lsd_oct1, lsd_oct2, ...), per channel with `per_channel=True`."""
    n_fft = stft_params(sample_rate)[0]
    return _on_magnitudes(ref, est, sample_rate, per_channel,
                          lambda r, e: _octave_lsd(r, e, cutoff_hz, n_fft, sample_rate))


def onset_correlation(ref, est, cutoff_hz: float, sample_rate: int = DEFAULT_RATE, per_channel: bool = False):
    """Do transients (cymbal strokes, hi-hats) come back at the right times in the band above the cutoff?

    The onset envelope of a signal is, per frame of the metric STFT, the positive spectral flux
    Σ_b max(0, L[t, b] − L[t−1, b]) over the bins b strictly above the cutoff, with the log power
    L = 10·log10(|X|² + floor) and a floor per bin ONSET_FLOOR_DB (40 dB) below the reference's mean power
    in that bin (the same floor for both signals: what lies far under the reference's level, such as a
    lowpass filter's residue, has no onsets). Returns the Pearson correlation of the reference's and the
    estimate's envelopes: 1 for the same onsets, about 0 for unrelated ones; 0 when the estimate's
    envelope is flat (no onsets at all), NaN when the reference's is.
    """
    n_fft = stft_params(sample_rate)[0]
    bins = _high_bins(cutoff_hz, n_fft, sample_rate)
    return _on_magnitudes(ref, est, sample_rate, per_channel, lambda r, e: _onset_corr(r, e, bins))


def codec_scores(ref, decoded, est, cutoff_hz: float, sample_rate: int = DEFAULT_RATE) -> dict:
    """Scores below the cutoff of a lossy decode's restoration `est` (mono mixes, metric STFT):

    - lsd_below: the LSD over the bins at or below the cutoff (those `lsd_high` leaves out);
    - hole_share: the codec's holes, the cells (frame, bin) below the cutoff where the decode's power is
      at least HOLE_DB (15 dB) under the reference's (reference not digitally silent), as a fraction of
      all cells below the cutoff: a property of the decode, the same for every method;
    - hole_lsd: the root mean square over exactly those cells of log10(R² / E²) (bels, the LSD's
      log ratio): how well `est` fills them (NaN when there is no hole).
    """
    n_fft, hop = stft_params(sample_rate)
    (r, d), = _prepare(ref, decoded, per_channel=False)  # mono mixes; checks the lengths
    (_, e), = _prepare(ref, est, per_channel=False)
    n = min(len(r), len(d), len(e))
    spectra = [magnitude_spectrogram(x[:n], n_fft, hop) for x in (r, d, e)]
    return _hole_scores(*spectra, cutoff_hz, n_fft, sample_rate)


def compute_metrics(
    ref,
    est,
    cutoff_hz: float | None = None,
    gaps: Sequence[tuple[float, float]] | None = None,
    sample_rate: int = DEFAULT_RATE,
    per_channel: bool = False,
) -> dict:
    """All metrics in one pass over the spectrograms.

    Keys: lsd, lsd_16k, sispec, log_sispec, ssim, si_sdr, mrstft; with `cutoff_hz` also lsd_high,
    lsd_oct1, lsd_oct2, ... (`octave_lsd`), onset_corr (`onset_correlation`), bias_db (the mean over
    octaves of `level_bias`), bias_db_oct1, bias_db_oct2, ... (octave k above the cutoff), bias_ne_db and
    bias_ne_db_oct1, ... (the same on non-empty reference cells, `level_bias(..., nonempty=True)`), and
    coherence, coherence_ref and coherence_diff (`band_coherence`; always one value for the pair); with
    `gaps` gap_lsd, gap_lsd_16k and gap_snr. Values are floats (lists of floats with
    `per_channel=True`, except the coherences).
    """
    n_fft, hop = stft_params(sample_rate)
    results = []
    for r, e in _prepare(ref, est, per_channel):
        R, E = magnitude_spectrogram(r, n_fft, hop), magnitude_spectrogram(e, n_fft, hop)
        frame_lsd = _lsd_per_frame(R, E)
        low = _bins_up_to(BAND_LIMIT_HZ, n_fft, sample_rate)
        frame_lsd_16k = _lsd_per_frame(R[:, low], E[:, low])
        scores = {
            "lsd": float(np.mean(frame_lsd)),
            "lsd_16k": float(np.mean(frame_lsd_16k)),
            "sispec": _sispec(E, R),
            "log_sispec": _log_sispec(E, R),
            "ssim": _ssim(R, E),
            "si_sdr": si_sdr(r, e),
            "mrstft": mrstft(r, e),
        }
        if cutoff_hz is not None:
            bins = _high_bins(cutoff_hz, n_fft, sample_rate)
            scores["lsd_high"] = float(np.mean(_lsd_per_frame(R[:, bins], E[:, bins])))
            for k, value in enumerate(_octave_lsd(R, E, cutoff_hz, n_fft, sample_rate)):
                scores[f"lsd_oct{k + 1}"] = value
            scores["onset_corr"] = _onset_corr(R, E, bins)
        if gaps:
            frames = _gap_frames(gaps, hop, len(R), sample_rate)
            scores["gap_lsd"] = float(np.mean(frame_lsd[frames])) if frames.any() else float("nan")
            scores["gap_lsd_16k"] = float(np.mean(frame_lsd_16k[frames])) if frames.any() else float("nan")
            scores["gap_snr"] = gap_snr(r, e, gaps, sample_rate)
        results.append(scores)
    combined = results[0] if not per_channel else {key: [scores[key] for scores in results] for key in results[0]}
    if cutoff_hz is not None:
        R_all, E_all = _complex_spectrograms(_channel_pairs(ref, est), sample_rate)
        combined.update(_high_band_scores(R_all, E_all, cutoff_hz, sample_rate, per_channel))
    return combined
