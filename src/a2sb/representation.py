"""The factorized STFT picture A2SB works on: |S|^0.25, cos(angle S), sin(angle S) (docs/method.md §Representation).

Waveforms are (..., samples) tensors at 44.1 kHz; pictures are (..., 3, 1024, frames) with the DC bin
dropped (row r holds FFT bin r + 1).
"""

from __future__ import annotations

import torch

from .audio import SAMPLE_RATE

N_FFT = 2048
HOP = 512
N_ROWS = N_FFT // 2  # bins 1..1024
POWER = 0.25
EPS = 1e-9


def _window(ref: torch.Tensor) -> torch.Tensor:
    return torch.hann_window(N_FFT, periodic=True, dtype=ref.real.dtype, device=ref.device)


def num_frames(length: int) -> int:
    """Frames of the centred STFT of `length` samples."""
    return 1 + length // HOP


def stft(wave: torch.Tensor) -> torch.Tensor:
    """Centred, reflect-padded, unnormalised one-sided STFT: (..., L) -> complex (..., 1025, W)."""
    batch = wave.shape[:-1]
    spec = torch.stft(wave.reshape(-1, wave.shape[-1]), N_FFT, HOP, window=_window(wave), center=True,
                      pad_mode="reflect", return_complex=True)
    return spec.reshape(*batch, *spec.shape[-2:])


def istft(spec: torch.Tensor, length: int | None = None) -> torch.Tensor:
    """Inverse of `stft` (weighted overlap-add); without `length` it returns 512·(W−1) samples."""
    batch = spec.shape[:-2]
    wave = torch.istft(spec.reshape(-1, *spec.shape[-2:]), N_FFT, HOP, window=_window(spec), center=True,
                       length=length)
    return wave.reshape(*batch, wave.shape[-1])


def compress(magnitude: torch.Tensor) -> torch.Tensor:
    """Published power compression M·M^0.25/(M+eps) (F3); equals M^0.25 unless M is tiny."""
    return magnitude * (magnitude.pow(POWER) / (magnitude + EPS))


def decompress(y: torch.Tensor) -> torch.Tensor:
    """Published inverse y·|y|^4/(|y|+eps) (F5). The sign is kept: a negative magnitude is a phase flip."""
    a = y.abs()
    return y * (a.pow(1.0 / POWER) / (a + EPS))


def spec_to_representation(spec: torch.Tensor) -> torch.Tensor:
    """Complex (..., 1025, W) STFT -> (..., 3, 1024, W) picture."""
    spec = spec[..., 1:, :]
    theta = torch.atan2(spec.imag, spec.real)  # atan2(0, 0) = 0 -> (cos, sin) = (1, 0)
    return torch.stack([compress(spec.abs()), torch.cos(theta), torch.sin(theta)], dim=-3)


def to_representation(wave: torch.Tensor) -> torch.Tensor:
    """Waveform (..., L) at 44.1 kHz -> picture (..., 3, 1024, 1 + L // 512)."""
    return spec_to_representation(stft(wave))


def project_phase(cos: torch.Tensor, sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest rotation to [[c, -s], [s, c]]: the published per-bin SVD fix in closed form (F9, F10).

    The matrix is r·Rot(phi), so its polar factor is (c, s)/r; r = 0 maps to (1, 0) like the SVD does.
    """
    r = torch.sqrt(cos * cos + sin * sin)
    ok = r > 0
    safe = torch.where(ok, r, torch.ones_like(r))
    return torch.where(ok, cos / safe, torch.ones_like(cos)), torch.where(ok, sin / safe, torch.zeros_like(sin))


def representation_to_spec(rep: torch.Tensor, phase_fix: bool = True) -> torch.Tensor:
    """Picture (..., 3, 1024, W) -> complex STFT (..., 1025, W) with a zero DC row."""
    magnitude = decompress(rep[..., 0, :, :])
    cos, sin = rep[..., 1, :, :], rep[..., 2, :, :]
    if phase_fix:
        cos, sin = project_phase(cos, sin)
    spec = torch.complex(magnitude * cos, magnitude * sin)
    dc = torch.zeros_like(spec[..., :1, :])
    return torch.cat([dc, spec], dim=-2)


def from_representation(rep: torch.Tensor, length: int | None = None, phase_fix: bool = True) -> torch.Tensor:
    """Picture -> waveform. `length` trims or zero-pads; by default 512·(W−1) samples come back."""
    return istft(representation_to_spec(rep, phase_fix), length)


def row_of_frequency(freq_hz: float, n_rows: int = N_ROWS, sample_rate: int = SAMPLE_RATE) -> int:
    """First picture row strictly above `freq_hz` (F11): int(2·H·f/sr)."""
    return int(2 * n_rows * freq_hz / sample_rate)


def frame_of_time(seconds: float, sample_rate: int = SAMPLE_RATE, hop: int = HOP) -> int:
    """Frame index of a time, as the published timestamped masks compute it: int(sr/hop·t)."""
    return int(sample_rate / hop * seconds)


def spread_blocks(frames: int, count: int, span: int) -> list[tuple[int, int]]:
    """Up to `count` evenly spread blocks [start, stop) of `span` frames over `frames` frames, first and
    last at the ends (fewer blocks when the frames hold fewer; one shorter block when they hold none):
    what a long recording's whole-file measures (the band replication slope, the hole share) look at,
    so that hours cost no more than minutes."""
    count = max(1, min(count, frames // span))
    span = min(frames, span)
    return [(start, start + span) for start in (round(k * (frames - span) / max(count - 1, 1)) for k in range(count))]
