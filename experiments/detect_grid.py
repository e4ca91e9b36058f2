"""Cutoff detection on real music: a grid of lowpass filters, resampling and MP3 over held-out tracks.

Each track gives two mono clips (CLIP_SECONDS): a typical one (the median treble among its loud passages)
and the one with the least treble (lowest power above 4 kHz among its non-silent passages: quiet or
dark music). Each clip is degraded by every case of the grid, stored as 16-bit PCM with TPDF dither
(MP3: the decoder's float output), and `a2sb.detect.detect_cutoff` is asked for its cutoff.

Truth (from the degradation itself, never from the music):
  brickwall   the cutoff;
  IIR filters the -3 dB point of the applied response (Butterworth single pass, orders 2-12;
              Chebyshev-I forward-backward, i.e. the squared response; elliptic single pass);
  soxr        the -3 dB point of the round trip through the lower rate, measured on white noise;
  mp3         the encoder's lowpass on this clip: the highest frequency below the clip's own edge
              where encoded/clean power is still above -10 dB (LAME's lowpass falls from -6 to -40 dB
              within 2 %, while its intermittent band holes take a few dB off the average just below).

The sources are Ogg Vorbis with their own edge (often 16-20 kHz) and dark passages have nothing above
a few kHz, so a lowpass above what the clip holds removes nothing and cannot be seen. Rule: a case
*counts* when the degradation is 30 dB down (`f30`) at or below the clip's own bandwidth B, the
highest frequency where the clean clip (16-bit, dithered) stands 30 dB above the dither floor (1/12
octave averages). There the music lost at least 30 dB that it had, which is what a cutoff is. A truth at or above
FULL_BAND_HZ (0.9 × Nyquist, where ADCs and 320 kbit/s MP3 put their edges; the detector calls that full
band) does not count either: MP3 at 96 kbit/s and up keeps content to about 20 kHz.

Scoring: a counted case is a *hit* when the answer is within 3 % of the truth (filters; 5 % for soxr
and MP3), *unsure* when the detector says None, *wrong* when off by more than 30 %. A case that does
not count is *sane* when the answer is None or lies between 0.7 × min(truth, B) and 1.3 × max(upper, B)
(the filter's edge or the clip's own; `upper` is the truth, or for MP3 the encoder's own lowpass at that
bitrate, up to which its coding noise may reach), else *wrong* too: a cliff invented in dark music.

    nice -n 10 python experiments/detect_grid.py                      # the three held-out packages
    nice -n 10 python experiments/detect_grid.py --packages wesnoth,singularity --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from functools import cache, lru_cache
from pathlib import Path

import numpy as np
import scipy.signal as sps
import soundfile as sf
import soxr

RATE = 44100
ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {
    "hedgewars": "data/pkgs/hedgewars-data/usr/share/games/hedgewars/Data/Music",
    "widelands": "data/pkgs/widelands-data/usr/share/games/widelands/data/music",
    "freedroidrpg": "data/pkgs/freedroidrpg-data/usr/share/freedroidrpg/data/sound/music",
    "wesnoth": "data/pkgs/wesnoth-1.16-music/usr/share/games/wesnoth/1.16/data/core/music",
    "singularity": "data/pkgs/singularity-music/usr/share/games/singularity/music",
}
HELD_OUT = ("hedgewars", "widelands", "freedroidrpg")
# The real-music excerpts shipped for tests/test_detect_real.py (CC-BY-SA-3.0, see tests/data/README.md):
# (folder, track, clip kind), cut by `--write-excerpts tests/data` as EXCERPT_SECONDS of mono 16-bit FLAC.
STK_MUSIC = "data/pkgs/supertuxkart-data/usr/share/games/supertuxkart/data/music"
EXCERPTS = ((STK_MUSIC, "overworld.ogg", "typical"), (STK_MUSIC, "menutheme.ogg", "typical"),
            (STK_MUSIC, "celtic.ogg", "least treble"), (STK_MUSIC, "valley.ogg", "least treble"))
EXCERPT_SECONDS = 6.0
CLIP_SECONDS = 10.0

CUTOFFS = (2000, 3000, 4000, 5500, 8000, 11000, 16000)
BUTTER_ORDERS = (2, 3, 4, 6, 8, 10, 12)
CHEBY = ((4, 1.0), (6, 0.5), (8, 0.5), (8, 0.1))  # (order, passband ripple dB), forward-backward
ELLIP = ((6, 0.5, 60), (8, 0.1, 80))  # (order, ripple dB, stopband dB), single pass
SOXR_RATES = (8000, 11025, 16000, 22050, 24000, 32000)
SOXR_QUALITIES = ("HQ", "VHQ")
MP3_KBPS = (64, 96, 128, 160, 192)

TOLERANCE = {"brickwall": 0.03, "butter": 0.03, "cheby1": 0.03, "ellip": 0.03, "soxr": 0.05, "mp3": 0.05}
WRONG = 0.30
FULL_BAND_HZ = 0.9 * RATE / 2  # a2sb.detect.FULL_BAND_HZ: edges at or above it are full band (None)
VISIBLE_DB = 30.0
LSB = 1 / 32768
PEAK = 0.89  # clips peaking higher are scaled down to this (-1 dBFS)


# ---------------------------------------------------------------------------------------------- clips

def tracks(packages) -> list[tuple[str, Path]]:
    out = []
    for package in packages:
        folder = ROOT / PACKAGES[package]
        out += [(package, p) for p in sorted(folder.glob("*.ogg"))]
    return out


def _window_levels(audio: np.ndarray, n: int, hop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(starts, total dBFS, dBFS above 4 kHz) of windows of n samples."""
    mono = audio.mean(axis=0)
    sos = sps.butter(8, 4000, "highpass", fs=RATE, output="sos")
    treble = sps.sosfilt(sos, mono)
    starts = np.arange(int(0.02 * len(mono)), max(int(0.98 * len(mono)) - n, 1), hop)
    total = np.array([np.mean(mono[s:s + n] ** 2) for s in starts])
    high = np.array([np.mean(treble[s:s + n] ** 2) for s in starts])
    return starts, 10 * np.log10(total + 1e-20), 10 * np.log10(high + 1e-20)


def clips_of(path: Path, seconds: float = CLIP_SECONDS) -> list[tuple[str, float, np.ndarray]]:
    """[(kind, start s, clip (1, n) float32)]: 'typical' and 'least treble', mixed to mono (the detector
    averages channels in power anyway; one channel halves the time of the grid)."""
    audio, rate = sf.read(path, dtype="float32", always_2d=True)
    audio = audio.mean(axis=1, keepdims=True).T
    if rate != RATE:
        audio = soxr.resample(audio.T, rate, RATE, quality="VHQ").T
    n = int(seconds * RATE)
    if audio.shape[1] < n:
        return [("typical", 0.0, np.ascontiguousarray(audio))]
    starts, total, high = _window_levels(audio, n, n // 2)
    loud = total >= total.max() - 20
    treble_share = high - total
    order = np.flatnonzero(loud)[np.argsort(treble_share[loud])]
    typical = int(order[len(order) // 2])
    quiet_ok = (total >= -50) & (np.abs(starts - starts[typical]) >= n)
    if not quiet_ok.any():
        quiet_ok = np.abs(starts - starts[typical]) >= n
    dark = int(np.flatnonzero(quiet_ok)[np.argmin(high[quiet_ok])]) if quiet_ok.any() else None
    out = [("typical", starts[typical] / RATE, audio[:, starts[typical]:starts[typical] + n])]
    if dark is not None:
        out.append(("least treble", starts[dark] / RATE, audio[:, starts[dark]:starts[dark] + n]))
    # a clip that overshoots full scale would be clipped by the 16-bit conversion, spreading its
    # distortion over the whole band: scale it below full scale instead
    return [(k, float(s), np.ascontiguousarray(c * min(1.0, PEAK / max(np.abs(c).max(), 1e-9)), dtype=np.float32))
            for k, s, c in out]


# ------------------------------------------------------------------------------------ measurements

def to_16bit(x: np.ndarray, seed: int) -> np.ndarray:
    """16-bit PCM with TPDF dither, as a lowpassed file saved by an audio editor would be."""
    rng = np.random.default_rng(seed)
    dither = (rng.random(x.shape) - rng.random(x.shape)) * LSB
    return (np.clip(np.round((x + dither) / LSB), -32768, 32767) * LSB).astype(np.float32)


def _spectrum(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    freqs, power = sps.welch(np.atleast_2d(x).astype(np.float64), RATE, nperseg=4096, axis=-1)
    return freqs, power.mean(axis=0)


def _smooth(freqs, power, fraction=12) -> tuple[np.ndarray, np.ndarray]:
    """Power averaged over 1/fraction octave, on a log grid from 500 Hz to 21.5 kHz."""
    grid = np.geomspace(500, 21500, 600)
    power = np.asarray(power, dtype=np.float64)  # float32 cumulative sums lose the quiet bands
    lo = np.searchsorted(freqs, grid * 2 ** (-0.5 / fraction))
    hi = np.maximum(np.searchsorted(freqs, grid * 2 ** (0.5 / fraction)), lo + 1)
    cumulative = np.concatenate([[0.0], np.cumsum(power)])
    return grid, (cumulative[hi] - cumulative[lo]) / (hi - lo)


@lru_cache(maxsize=1)
def _dither_floor() -> np.ndarray:
    _, power = _smooth(*_spectrum(to_16bit(np.zeros((2, int(4 * RATE))), 0)))
    return power


def own_bandwidth(clean16: np.ndarray) -> float:
    """Highest frequency where the (16-bit) clean clip stands VISIBLE_DB above the dither floor."""
    grid, power = _smooth(*_spectrum(clean16))
    above = np.flatnonzero(10 * np.log10(power / _dither_floor()) >= VISIBLE_DB)
    return float(grid[above[-1]]) if len(above) else 0.0


def _edges_of_response(freqs: np.ndarray, gain_db: np.ndarray) -> tuple[float, float]:
    """(-3 dB point, first frequency above it at -30 dB) of a lowpass response."""
    stop = np.flatnonzero(gain_db <= -VISIBLE_DB)
    first_stop = stop[0] if len(stop) else len(freqs)
    edge = float(freqs[np.flatnonzero(gain_db[:first_stop] >= -3.0)[-1]])
    return edge, float(freqs[first_stop]) if len(stop) else np.inf


def iir_truth(sos: np.ndarray, passes: int) -> tuple[float, float]:
    freqs, h = sps.sosfreqz(sos, worN=1 << 16, fs=RATE)
    return _edges_of_response(freqs, passes * 20 * np.log10(np.abs(h) + 1e-300))


@cache
def soxr_truth(rate: int, quality: str) -> tuple[float, float]:
    noise = np.random.default_rng(0).standard_normal(1 << 19)
    out = soxr.resample(soxr.resample(noise, RATE, rate, quality=quality), rate, RATE, quality=quality)
    n = min(len(noise), len(out))
    f, p_in = sps.welch(noise[:n], RATE, nperseg=8192)
    _, p_out = sps.welch(out[:n], RATE, nperseg=8192)
    return _edges_of_response(f, 10 * np.log10(p_out / p_in + 1e-30))


def mp3_level(kbps: int) -> float:
    """libsndfile's compression level for a constant bitrate (it maps [0, 1] to 320..32 kbit/s)."""
    return (320 - kbps) / (320 - 32)


def mp3(x: np.ndarray, kbps: int) -> np.ndarray:
    """Encoded by LAME through libsndfile (constant bitrate) and decoded again. Through a real file:
    reading MP3 from memory can be taken for a Sound Designer II file, depending on the folder."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "x.mp3")
        sf.write(path, x.T, RATE, format="MP3", compression_level=mp3_level(kbps), bitrate_mode="CONSTANT")
        decoded, _ = sf.read(path, dtype="float32", always_2d=True)
    return np.ascontiguousarray(decoded.T[:, :x.shape[1]])


@cache
def mp3_nominal(kbps: int) -> float:
    """The encoder's lowpass at this bitrate where nothing else limits it: the -10 dB point of
    encoded/clean pink noise (10 s, -20 dBFS), mono like the clips (LAME keeps a wider band in mono)."""
    white = np.random.default_rng(1).standard_normal((1, 10 * RATE))
    f = np.maximum(np.fft.rfftfreq(white.shape[1], 1 / RATE), 20.0)
    pink = np.fft.irfft(np.fft.rfft(white) / np.sqrt(f / 1000), white.shape[1])
    pink = (0.1 * pink / pink.std()).astype(np.float32)
    return mp3_truth(pink, mp3(pink, kbps), RATE / 2)[0]


def mp3_truth(clean: np.ndarray, encoded: np.ndarray, bandwidth: float) -> tuple[float, float]:
    grid, p_clean = _smooth(*_spectrum(clean), fraction=48)
    _, p_enc = _smooth(*_spectrum(encoded), fraction=48)
    ratio = 10 * np.log10((p_enc + 1e-30) / (p_clean + 1e-30))
    inside = grid <= max(bandwidth, grid[0])
    kept = np.flatnonzero(inside & (ratio >= -10))
    if not len(kept):
        return float(grid[0]), float(grid[0])
    edge = float(grid[kept[-1]])
    down = np.flatnonzero((ratio <= -VISIBLE_DB) & (grid > edge))
    return edge, float(grid[down[0]]) if len(down) else np.inf


# --------------------------------------------------------------------------------------------- grid

def _brickwall(x: np.ndarray, fc: float) -> np.ndarray:
    spectrum = np.fft.rfft(x, axis=-1)
    spectrum[..., np.fft.rfftfreq(x.shape[-1], 1 / RATE) > fc] = 0
    return np.fft.irfft(spectrum, x.shape[-1], axis=-1)


def cases(clean: np.ndarray, cutoffs=CUTOFFS, butter_orders=BUTTER_ORDERS, cheby=CHEBY, ellip=ELLIP,
          soxr_rates=SOXR_RATES, soxr_qualities=SOXR_QUALITIES, mp3_kbps=MP3_KBPS):
    """(family, label, make() -> degraded float audio, truth Hz, f30 Hz, upper Hz): `upper` is the
    highest edge the degradation itself can leave (its truth, or for MP3 the encoder's lowpass when the
    clip does not reach it); for MP3 truth and f30 are None (measured on the clip)."""
    for fc in cutoffs:
        yield "brickwall", f"brickwall {fc}", lambda fc=fc: _brickwall(clean, fc), fc, fc, fc
        for order in butter_orders:
            sos = sps.butter(order, fc, fs=RATE, output="sos")
            truth, f30 = iir_truth(sos, 1)
            yield ("butter", f"butter{order} {fc}", lambda sos=sos: sps.sosfilt(sos, clean, axis=-1),
                   truth, f30, truth)
        for order, ripple in cheby:
            sos = sps.cheby1(order, ripple, fc, fs=RATE, output="sos")
            truth, f30 = iir_truth(sos, 2)
            yield ("cheby1", f"cheby1 {order}/{ripple}dB fb {fc}",
                   lambda sos=sos: sps.sosfiltfilt(sos, clean, axis=-1), truth, f30, truth)
        for order, ripple, stop in ellip:
            sos = sps.ellip(order, ripple, stop, fc, fs=RATE, output="sos")
            truth, f30 = iir_truth(sos, 1)
            yield ("ellip", f"ellip {order}/{ripple}/{stop}dB {fc}",
                   lambda sos=sos: sps.sosfilt(sos, clean, axis=-1), truth, f30, truth)
    for rate in soxr_rates:
        for quality in soxr_qualities:
            def resampled(rate=rate, quality=quality):
                low = soxr.resample(clean.T, RATE, rate, quality=quality)
                return soxr.resample(low, rate, RATE, quality=quality).T[:, :clean.shape[1]]
            truth, f30 = soxr_truth(rate, quality)
            yield "soxr", f"soxr {quality} {rate}", resampled, truth, f30, truth
    for kbps in mp3_kbps:
        yield "mp3", f"mp3 {kbps}k", lambda kbps=kbps: mp3(clean, kbps), None, None, mp3_nominal(kbps)


def score(family: str, truth: float, counted: bool, found: float | None, bandwidth: float,
          upper: float | None = None) -> str:
    if counted:
        if found is None:
            return "unsure"
        error = abs(found / truth - 1)
        return "hit" if error <= TOLERANCE[family] else ("wrong" if error > WRONG else "miss")
    if found is None:
        return "sane"
    lo, hi = (1 - WRONG) * min(truth, bandwidth), (1 + WRONG) * max(truth if upper is None else upper, bandwidth)
    return "sane" if lo <= found <= hi else "wrong"


def run_clip(clean: np.ndarray, detect, seed: int = 0, **grid) -> list[dict]:
    """Every case of the grid on one clip: dicts with family, label, truth, f30, bandwidth, counted,
    found, error, outcome."""
    clean16 = to_16bit(clean, seed)
    bandwidth = own_bandwidth(clean16)
    rows = []
    for i, (family, label, make, truth, f30, upper) in enumerate(cases(clean, **grid)):
        degraded = make()
        if family == "mp3":
            truth, f30 = mp3_truth(clean, degraded, bandwidth)
        else:
            degraded = to_16bit(degraded, seed + 1 + i)
        found = detect(degraded, RATE)
        counted = f30 <= bandwidth and truth < FULL_BAND_HZ
        rows.append(dict(family=family, label=label, truth=round(truth, 1), f30=round(min(f30, 1e9), 1),
                         bandwidth=round(bandwidth, 1), counted=bool(counted),
                         found=None if found is None else round(float(found), 1),
                         error=None if found is None else round(float(found) / truth - 1, 4),
                         outcome=score(family, truth, counted, found, bandwidth, upper)))
    return rows


# -------------------------------------------------------------------------------------------- report

def summary(rows: list[dict], key=lambda r: r["family"]) -> dict:
    groups = defaultdict(list)
    for r in rows:
        groups[key(r)].append(r)
    out = {}
    for name, rs in sorted(groups.items()):
        counted = [r for r in rs if r["counted"]]
        other = [r for r in rs if not r["counted"]]
        answered = [r for r in counted if r["found"] is not None]
        worst = max(answered, key=lambda r: abs(r["error"]), default=None)
        out[name] = dict(
            counted=len(counted), hits=sum(r["outcome"] == "hit" for r in counted),
            hit_rate=round(sum(r["outcome"] == "hit" for r in counted) / max(1, len(counted)), 4),
            unsure=sum(r["outcome"] == "unsure" for r in counted),
            wrong=sum(r["outcome"] == "wrong" for r in counted),
            worst_error=None if worst is None else worst["error"],
            not_counted=len(other), not_counted_wrong=sum(r["outcome"] == "wrong" for r in other))
    return out


def print_table(title: str, table: dict) -> None:
    print(f"\n{title}")
    print(f"{'':>14} {'counted':>8} {'hit rate':>9} {'unsure':>7} {'wrong':>6} {'worst err':>10} "
          f"{'not counted':>12} {'of them wrong':>14}")
    for name, s in table.items():
        worst = "-" if s["worst_error"] is None else f"{s['worst_error']:+.3f}"
        print(f"{name:>14} {s['counted']:>8} {s['hit_rate']:>9.3f} {s['unsure']:>7} {s['wrong']:>6} {worst:>10} "
              f"{s['not_counted']:>12} {s['not_counted_wrong']:>14}")


def _clip_job(job):
    package, path, kind, start, clip, seed = job
    from a2sb.detect import detect_cutoff

    rows = run_clip(clip, detect_cutoff, seed)
    for r in rows:
        r.update(package=package, track=path.name, clip=kind, start=round(start, 1))
    return rows


def excerpt_name(track: str, kind: str) -> str:
    return f"{Path(track).stem}-{kind.replace(' ', '-')}.flac"


def write_excerpts(folder: Path) -> int:
    """The EXCERPTS as 16-bit mono FLAC (TPDF dither, seed 0), named by excerpt_name."""
    for source, track, kind in EXCERPTS:
        chosen = [(start, clip) for k, start, clip in clips_of(ROOT / source / track, EXCERPT_SECONDS) if k == kind]
        if not chosen:
            print(f"{track}: no {kind} clip", file=sys.stderr)
            return 2
        start, clip = chosen[0]
        out = folder / excerpt_name(track, kind)
        sf.write(out, to_16bit(clip, 0)[0], RATE, subtype="PCM_16")
        print(f"{out}: {track} from {start:.1f} s, {EXCERPT_SECONDS:g} s, {out.stat().st_size} bytes")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", default=",".join(HELD_OUT), help=f"comma-separated, of {', '.join(PACKAGES)}")
    parser.add_argument("--seconds", type=float, default=CLIP_SECONDS)
    parser.add_argument("--tracks", type=int, default=None, help="at most this many tracks per package")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", default=None, help="write every case here")
    parser.add_argument("--worst", type=int, default=15, help="list this many worst counted cases")
    parser.add_argument("--write-excerpts", metavar="DIR", help="only write the test excerpts (EXCERPTS) to DIR")
    args = parser.parse_args(argv)
    if args.write_excerpts:
        return write_excerpts(Path(args.write_excerpts))
    packages = [p.strip() for p in args.packages.split(",") if p.strip()]
    unknown = [p for p in packages if p not in PACKAGES]
    if unknown:
        parser.error(f"unknown package(s) {unknown}")
    chosen = []
    for package in packages:
        found = [t for t in tracks([package])]
        if not found:
            print(f"no tracks for {package} under {ROOT / PACKAGES[package]}", file=sys.stderr)
            return 2
        chosen += found[:args.tracks]
    t0 = time.time()
    jobs = []
    for i, (package, path) in enumerate(chosen):
        for kind, start, clip in clips_of(path, args.seconds):
            jobs.append((package, path, kind, start, clip, 1000 * i))
    rows = []
    with ProcessPoolExecutor(args.workers) as pool:
        for done, part in enumerate(pool.map(_clip_job, jobs), 1):
            rows += part
            if done % 10 == 0:
                print(f"  {done}/{len(jobs)} clips, {time.time() - t0:.0f} s", file=sys.stderr)
    print(f"{len(chosen)} tracks, {len(jobs)} clips of {args.seconds:g} s, {len(rows)} cases, "
          f"{time.time() - t0:.0f} s")
    print_table("per family (all packages)", summary(rows))
    print_table("per filter", summary(rows, key=lambda r: r["label"].rsplit(" ", 1)[0] if r["family"] in
                                      ("butter", "cheby1", "ellip") else r["family"]))
    print_table("per package", summary(rows, key=lambda r: r["package"]))
    print_table("per clip kind", summary(rows, key=lambda r: r["clip"]))
    counted = [r for r in rows if r["counted"]]
    total = summary(rows, key=lambda r: "all")["all"]
    print(f"\nall counted: {total['hits']}/{total['counted']} hits ({total['hit_rate']:.3f}), "
          f"{total['unsure']} unsure, {total['wrong']} wrong; not counted: {total['not_counted']}, "
          f"{total['not_counted_wrong']} wrong")
    bad = sorted((r for r in counted if r["outcome"] not in ("hit",)),
                 key=lambda r: -abs(r["error"]) if r["error"] is not None else 0)
    print(f"\nworst counted cases ({args.worst}):")
    for r in bad[:args.worst]:
        print(f"  {r['package']:>12} {r['track'][:24]:>24} {r['clip']:>12} {r['label']:>28} truth {r['truth']:8.0f} "
              f"found {r['found']!s:>8} err {r['error']!s:>8} B {r['bandwidth']:6.0f}")
    wrong_other = [r for r in rows if not r["counted"] and r["outcome"] == "wrong"]
    if wrong_other:
        print(f"\nwrong answers on cases that do not count ({len(wrong_other)}), first {args.worst}:")
        for r in wrong_other[:args.worst]:
            print(f"  {r['package']:>12} {r['track'][:24]:>24} {r['clip']:>12} {r['label']:>28} truth {r['truth']:8.0f}"
                  f" found {r['found']!s:>8} B {r['bandwidth']:6.0f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
