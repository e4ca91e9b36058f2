"""Before/after spectrogram pictures for `a2sb restore --plot`.

Spectrograms are computed from a bounded number of evenly spaced frames read with seeking, so a
plot of an hour-long file costs no more memory than one of a song.
"""

from __future__ import annotations

import os

import numpy as np

from .audio import atomic_write, audio_info

N_FFT = 2048
MAX_COLUMNS = 1500
TOP_HZ = 22050.0


def spectrogram_db(path: str | os.PathLike, columns: int = MAX_COLUMNS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(times s, frequencies Hz, level dB (freqs, times)) of a file: log-magnitude of Hann-windowed frames at
    up to `columns` evenly spaced positions, power averaged over channels. The file is read once, in
    order (no seeking: MP3 decoders complain about seeks), keeping only a frame's worth of samples."""
    from .audio import read_chunks

    info = audio_info(path)
    rate, frames = info.sample_rate, info.frames
    n = max(1, min(columns, frames // (N_FFT // 4) + 1))
    centres = np.linspace(0, max(frames - 1, 0), n).astype(int)
    window = np.hanning(N_FFT).astype(np.float32)
    levels = np.empty((N_FFT // 2 + 1, n), np.float32)
    half = N_FFT // 2
    buffer = np.zeros((info.channels, half), np.float32)  # zeros before the start
    base = -half  # sample index of buffer[:, 0]
    i = 0
    chunks = read_chunks(path, 1 << 16)
    while i < n:
        while base + buffer.shape[1] < centres[i] + half:  # read until frame i is covered
            chunk = next(chunks, None)
            if chunk is None:  # zeros after the end
                chunk = np.zeros((info.channels, N_FFT), np.float32)
            buffer = np.concatenate([buffer, np.nan_to_num(chunk)], axis=1)
        start = centres[i] - half - base
        power = (np.abs(np.fft.rfft(buffer[:, start:start + N_FFT] * window, axis=-1)) ** 2).mean(axis=0)
        levels[:, i] = 10 * np.log10(power + 1e-12)
        i += 1
        if i < n:  # forget what the next frames do not need
            drop = max(0, centres[i] - half - base)
            buffer, base = buffer[:, drop:], base + drop
    return centres / rate, np.fft.rfftfreq(N_FFT, 1 / rate), levels


def save_comparison(png: str | os.PathLike, before: str | os.PathLike, after: str | os.PathLike, *,
                    cutoff: float | None = None, gaps: list[tuple[float, float]] = ()) -> None:
    """Input and output spectrograms (0–22 kHz, log magnitude) one above the other, with the restored
    region outlined: the band above `cutoff` and each gap."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    panels = [("input", spectrogram_db(before)), ("restored", spectrogram_db(after))]
    top = max(level.max() for _, (_, _, level) in panels)
    fig, axes = plt.subplots(2, 1, figsize=(12, 7), sharex=True, constrained_layout=True)
    for ax, (title, (times, freqs, level)) in zip(axes, panels):
        extent = (times[0], times[-1] if len(times) > 1 else times[0] + 1e-3, freqs[0], freqs[-1])
        image = ax.imshow(level, origin="lower", aspect="auto", extent=extent, vmin=top - 100, vmax=top,
                          cmap="magma", interpolation="nearest")
        ax.set_ylim(0, TOP_HZ)
        ax.set_ylabel("frequency (Hz)")
        ax.set_title(f"{title}: {os.path.basename(str(before if title == 'input' else after))}")
        duration = extent[1] - extent[0]
        outline = dict(fill=False, edgecolor="cyan", linewidth=1.2, linestyle="--")
        if cutoff is not None:
            ax.add_patch(Rectangle((extent[0], cutoff), duration, TOP_HZ - cutoff, **outline))
        for start, end in gaps:
            ax.add_patch(Rectangle((start, 0), end - start, TOP_HZ, **outline))
        fig.colorbar(image, ax=ax, label="dB")
    axes[-1].set_xlabel("time (s)")
    try:
        with atomic_write(png) as tmp:  # never half a picture, nothing left behind on an error
            fig.savefig(tmp, dpi=100, format="png")
    finally:
        plt.close(fig)
