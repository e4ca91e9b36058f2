"""Gap fills are safe: per octave within 3 dB of the music around the gap, no sample above that
neighbourhood's peak + 3 dB, no click at the edges (levels.make_fill_safe), whatever the model makes."""

import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from a2sb import levels
from a2sb.model import A2SBModel
from a2sb.network import preset
from a2sb.plan import gap_warnings
from a2sb.restorer import A2SBWarning, Restorer

ROOT = Path(__file__).resolve().parents[1]
RATE = 44100
N = 2048  # the measurement's frames (numpy, Hann), independent of the module's own analysis
OCTAVES = 22050 / 2.0 ** np.arange(9)[::-1]  # octave edges 86 Hz ... 22.05 kHz
LEVEL_DB = 3.0  # the bounds the issue asks for
PEAK_DB = 3.0
CLICK_FACTOR = 2.0  # a join's largest sample step may be this many times the music's 99.9th percentile step
JOIN = (int(0.015 * RATE), int(0.005 * RATE))  # a join: from 15 ms outside a gap's edge (the splice's 10 ms
# crossfade and 5 ms more) to 5 ms inside it


def load(name: str) -> np.ndarray:
    audio, rate = sf.read(ROOT / name, dtype="float32", always_2d=True)
    assert rate == RATE
    return audio.T


def octave_db(y: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Mean power per octave (dB) of the Hann frames of N samples starting at `starts`, channels summed."""
    frames = y[:, starts[:, None] + np.arange(N)] * np.hanning(N + 1)[:-1]
    power = (np.abs(np.fft.rfft(frames, axis=-1)) ** 2).sum(axis=0)
    freqs = np.fft.rfftfreq(N, 1 / RATE)
    bands = [power[:, (freqs >= lo) & (freqs < hi)].sum(axis=1).mean() for lo, hi in zip(OCTAVES[:-1], OCTAVES[1:])]
    return 10 * np.log10(np.maximum(bands, 1e-20))


def fill_report(y: np.ndarray, s: int, e: int, gaps: list[tuple[int, int]]) -> dict:
    """The three measures for the gap [s, e) of the output `y` (other `gaps` are not music): level per octave
    of the fill (frames inside the gap) minus the context's (frames within 1 s around it that touch no gap),
    the fill's peak over the neighbourhood's (dB), and the largest sample step at its joins (JOIN) over the
    music's 99.9th percentile step in the neighbourhood."""
    n = y.shape[1]
    known = np.ones(n, bool)
    for a, b in gaps:
        known[a:b] = False
    lo, hi = max(0, s - RATE), min(n, e + RATE)
    inside = np.arange(s, e - N + 1, N // 4)
    inside = inside if len(inside) else np.array([(s + e) // 2 - N // 2])
    around = np.array([a for a in range(lo, hi - N + 1, N // 4) if known[a:a + N].all()])
    context = octave_db(y, around)
    difference = octave_db(y, inside) - context
    music = context >= context.max() - 50  # octaves where the context has content (not a lowpass's empty top)
    neighbourhood = np.zeros(n, bool)
    neighbourhood[lo:hi] = True
    neighbourhood &= known
    step = np.abs(np.diff(y, axis=1)).max(axis=0)
    typical = np.percentile(step[neighbourhood[1:] & neighbourhood[:-1]], 99.9)
    edges = max(step[max(0, s - JOIN[0]):s + JOIN[1]].max(), step[max(0, e - JOIN[1]):e + JOIN[0]].max())
    return dict(too_loud=float(difference.max()), too_quiet=float(-difference[music].min()),
                peak_db=float(20 * np.log10(np.abs(y[:, s:e]).max() / np.abs(y[:, neighbourhood]).max())),
                click=float(edges / typical))


def assert_safe(y, gaps, where=""):
    for s, e in gaps:
        r = fill_report(y, s, e, gaps)
        label = f"{where} gap {s / RATE:.3f}-{e / RATE:.3f} s: {r}"
        assert r["too_loud"] <= LEVEL_DB and r["too_quiet"] <= LEVEL_DB, label
        assert r["peak_db"] <= PEAK_DB, label
        assert r["click"] <= CLICK_FACTOR, label
        assert np.abs(y[:, s:e]).max() <= 1.0, label


def random_gaps(n: int, count: int, rng, shortest=0.05, longest=1.0, apart=1.0) -> list[tuple[int, int]]:
    """`count` gaps of shortest..longest s at random places, at least `apart` s from each other and the ends."""
    gaps: list[tuple[int, int]] = []
    while len(gaps) < count:
        length = int(rng.uniform(shortest, longest) * RATE)
        s = int(rng.integers(RATE, n - RATE - length))
        if all(s + length + apart * RATE <= a or s >= b + apart * RATE for a, b in gaps):
            gaps.append((s, s + length))
    return sorted(gaps)


def damaged(audio, gaps):
    x = audio.copy()
    for s, e in gaps:
        x[:, s:e] = 0
    return x


def seconds(gaps):
    return [(s / RATE, e / RATE) for s, e in gaps]


# ----------------------------------------------------------------------------------------------------
# the stage on its own: fills made up to be bad


def splice(x, wave, n0, weight):
    y = x.copy()
    y[:, n0:n0 + wave.shape[1]] = x[:, n0:n0 + wave.shape[1]] * (1 - weight) + wave * weight
    return y


def weight_for(s, e, n0, n1, fade=441):
    """1 inside [s, e), raised-cosine ramps of `fade` samples just outside, as the restore path splices."""
    p = np.arange(n0, n1)
    w = np.minimum(np.clip((p - (s - fade) + 0.5) / fade, 0, 1), np.clip((e + fade - p - 0.5) / fade, 0, 1))
    return (0.5 - 0.5 * np.cos(np.pi * w)).astype(np.float32)


@pytest.mark.parametrize("kind", ["burst", "noise", "silent", "broadband over lowpassed"])
def test_stage_bounds_a_bad_fill(kind):
    rng = np.random.default_rng(5)
    if kind == "broadband over lowpassed":
        x = load("examples/example_lowpassed.flac")  # nothing above 8 kHz around the gap
    else:
        x = load("examples/example.flac")
    s, e = int(4.2 * RATE), int(4.9 * RATE)
    n0, n1 = s - 442, e + 442
    original = x[:, n0:n1]
    wave = {"burst": original * 10.0 + 0.5 * np.sin(np.arange(n1 - n0) / 9.0),  # 20 dB too loud, clipping
            "noise": rng.standard_normal(original.shape),  # broadband at +3 dBFS rms
            "silent": original * 1e-4,  # 80 dB too quiet
            "broadband over lowpassed": original + 0.1 * rng.standard_normal(original.shape)}[kind].astype(np.float32)
    weight = weight_for(s, e, n0, n1)
    gaps = [(s, e)]
    before = fill_report(splice(damaged(x, gaps), wave, n0, weight), s, e, gaps)
    assert max(before["too_loud"], before["too_quiet"], before["peak_db"] - PEAK_DB) > 10  # really bad
    hole = damaged(x, gaps)
    safe = levels.make_fill_safe(wave, n0, weight, gaps, gaps, lambda a, b: hole[:, a:b], x.shape[1])
    assert safe.shape == wave.shape and safe.dtype == np.float32
    assert_safe(splice(hole, safe, n0, weight), gaps, kind)


def test_stage_leaves_a_fill_at_the_musics_level_as_it_is():
    rng = np.random.default_rng(6)
    x = (0.1 * rng.standard_normal((2, 5 * RATE))).astype(np.float32)  # steady noise: every part alike
    s, e = 2 * RATE, int(2.4 * RATE)
    wave = (0.1 * rng.standard_normal((2, e - s + 884))).astype(np.float32)
    weight = weight_for(s, e, s - 442, e + 442)
    out = levels.make_fill_safe(wave, s - 442, weight, [(s, e)], [(s, e)], lambda a, b: x[:, a:b], x.shape[1])
    assert np.array_equal(out, wave)


def test_band_gains_bring_each_band_into_its_bounds():
    """Per band: raised to `tolerance` under the lower bound, lowered to `tolerance` over the upper one, left
    alone in between; a band empty everywhere gets 0 dB (compared with the arithmetic in float64)."""
    fill = np.array([1e-6, 1e-2, 1.0, 0.0, 1e-4])
    low = np.array([1e-4, 1e-4, 1e-4, 0.0, 1e-4])
    high = np.array([1e-3, 1e-3, 1e-3, 0.0, 1e-4])
    gains = levels._band_gains_db(fill, (low, high), 1.5)
    expected = np.array([(-40 - 1.5) - (-60), (-30 + 1.5) - (-20), (-30 + 1.5) - 0, 0.0, 0.0])
    np.testing.assert_allclose(gains, expected, atol=1e-9)
    # one array for both bounds: within ±1.5 dB of it, as restoration holds a fill to its context
    np.testing.assert_allclose(levels._band_gains_db(fill, (low, low), 1.5)[:3], [18.5, -18.5, -38.5], atol=1e-9)


def test_stage_judges_context_without_other_gaps():
    """Another gap's silence 0.3 s away is not context: a fill matched to it would be far too quiet."""
    x = load("examples/example.flac")
    gaps = [(int(3.0 * RATE), int(3.3 * RATE)), (int(3.6 * RATE), int(4.4 * RATE)), (int(4.7 * RATE), int(5.0 * RATE))]
    hole = damaged(x, gaps)
    s, e = gaps[1]
    n0, n1 = s - 442, e + 442
    wave = x[:, n0:n1] * 10 ** (-12 / 20)  # the music, 12 dB too quiet
    weight = weight_for(s, e, n0, n1)
    safe = levels.make_fill_safe(wave, n0, weight, [(s, e)], gaps, lambda a, b: hole[:, a:b], x.shape[1])
    y = splice(hole, safe, n0, weight)
    report = fill_report(y, s, e, gaps)
    assert report["too_quiet"] <= LEVEL_DB and report["too_loud"] <= LEVEL_DB, report


def test_long_gaps_are_warned_about():
    assert gap_warnings([(1.0, 2.0), (3.0, 3.5)]) == []
    (message,) = gap_warnings([(1.0, 2.0), (4.0, 5.25)])
    assert "0:04.00-0:05.25" in message and "longer than 1 s" in message


# ----------------------------------------------------------------------------------------------------
# through the restore path


class Babbler(A2SBModel):
    """The tiny architecture with a cheap nonsense stand-in for its network: fills that are far off."""

    def __init__(self):
        super().__init__(preset("tiny"), t_cutoffs=[0.5])

    def predict_noise(self, x, t, expert=None):
        return 0.9 * torch.sin(3 * x + torch.roll(x, 2, -2))


def restore_gaps(audio, gaps, **options):
    """Restorer.restore_audio on (channels, samples), gaps given in samples, without the whole output's
    peak-safe gain (the fills' own bounds are what is tested)."""
    restorer = Restorer(peak_safety=False, **options)
    return restorer.restore_audio(damaged(audio, gaps).T, RATE, gaps=seconds(gaps), cutoff=None)[0].T


def restore_with_babbler(audio, gaps, **options):
    return restore_gaps(audio, gaps, model=Babbler().eval(), steps=3, window=32, hop=16, **options)


def test_nonsense_fills_are_made_safe():
    """Fills far off the music (real music, tests/data, gaps at seeded random places, some close together)
    are made safe; spliced as they come (level_match=False) they are not."""
    audio = np.concatenate([load("tests/data/overworld-typical.flac"), load("tests/data/celtic-least-treble.flac")], 1)
    gaps = random_gaps(audio.shape[1], 5, np.random.default_rng(8), apart=0.2)
    with pytest.raises(AssertionError):
        assert_safe(restore_with_babbler(audio, gaps, level_match=False), gaps)
    assert_safe(restore_with_babbler(audio, gaps), gaps, "nonsense")


def test_gaps_over_a_second_are_filled_with_a_warning():
    audio = load("tests/data/menutheme-typical.flac")
    gaps = [(2 * RATE, int(3.3 * RATE))]
    with pytest.warns(A2SBWarning, match=r"longer than 1 s \(0:02\.00-0:03\.30\)"):
        y = restore_with_babbler(audio, gaps)
    assert_safe(y, gaps, "long gap")
    with warnings.catch_warnings():
        warnings.simplefilter("error", A2SBWarning)  # a 1 s gap: no warning
        restore_with_babbler(audio, [(RATE, 2 * RATE)])


@pytest.mark.parametrize("name, count, seed", [("examples/example.flac", 3, 1),
                                               ("tests/data/valley-least-treble.flac", 2, 2)])
def test_bundled_model_fills_are_safe(name, count, seed):
    """The property over position and length (0.05-1.0 s, seeded) with the bundled model on real music:
    the three bounds hold for every fill. Before the safety stage the same fills were up to 7.4 dB too loud
    and 13.5 dB too quiet in an octave, and one peaked 3.5 dB above the music around it, at full scale."""
    audio = load(name)
    gaps = random_gaps(audio.shape[1], count, np.random.default_rng(seed), apart=0.3)
    y = restore_gaps(audio, gaps)
    assert_safe(y, gaps, name)


# ----------------------------------------------------------------------------------------------------
# a band and dropouts together: the whole output is the model's (output.FillGuard)


def lowpassed(audio, cutoff_hz=4000.0):
    from scipy.signal import butter, sosfiltfilt

    return sosfiltfilt(butter(8, cutoff_hz, fs=RATE, output="sos"), audio, axis=1).astype(np.float32)


def restore_band_and_gaps(audio, gaps, **options):
    """Bandwidth extension from 4 kHz and the gaps filled in one restoration, without the peak-safe gain."""
    restorer = Restorer(peak_safety=False, **options)
    return restorer.restore_audio(damaged(lowpassed(audio), gaps).T, RATE, gaps=seconds(gaps), cutoff=4000.0)[0].T


@pytest.mark.parametrize("name, seed", [("examples/example.flac", 3), ("tests/data/overworld-typical.flac", 4)])
def test_fills_are_safe_when_a_band_is_regenerated_too(name, seed):
    """With a cutoff the output is the model's everywhere and the fills are judged against the restored music
    (band included). Before the guard the bundled model's fills on the README example peaked 21 dB above
    full scale, and the peak-safe gain then lowered the whole file by 21 dB."""
    audio = load(name)
    gaps = random_gaps(audio.shape[1], 2, np.random.default_rng(seed), shortest=0.2, longest=0.6, apart=0.5)
    y = restore_band_and_gaps(audio, gaps)
    assert_safe(y, gaps, name)
    known = np.ones(audio.shape[1], bool)  # away from the fills the restoration is the music's level
    for s, e in gaps:
        known[max(0, s - RATE // 5):e + RATE // 5] = False
    assert abs(20 * np.log10(np.abs(y[:, known]).max() / np.abs(audio[:, known]).max())) < 3.0


def test_nonsense_fills_are_made_safe_when_a_band_is_regenerated_too():
    audio = load("tests/data/celtic-least-treble.flac")
    gaps = random_gaps(audio.shape[1], 3, np.random.default_rng(5), apart=0.3)
    options = dict(model=Babbler().eval(), steps=3, window=32, hop=16)
    with pytest.raises(AssertionError):
        assert_safe(restore_band_and_gaps(audio, gaps, level_match=False, **options), gaps)
    assert_safe(restore_band_and_gaps(audio, gaps, **options), gaps, "nonsense with a band")


def test_fill_guard_streams_in_any_chunks_and_leaves_the_rest_alone():
    """The guard's output does not depend on how the output arrives, and samples away from the fills pass
    through unchanged."""
    from a2sb.output import FillGuard

    rng = np.random.default_rng(0)
    n = 5 * RATE
    music = (0.1 * rng.standard_normal((2, n))).astype(np.float32)
    y = music.copy()
    spans = [(RATE, RATE + 8000), (int(1.3 * RATE), int(1.3 * RATE) + 4000), (4 * RATE, 4 * RATE + 6000)]
    for s, e in spans:
        y[:, s:e] *= 30  # bursts
    outputs = []
    for sizes in ([n], [1000] * (n // 1000) + [n % 1000], list(rng.integers(1, 40000, 40))):
        got = []
        guard = FillGuard([(s + 1000, e - 1000) for s, e in spans], spans, n, got.append)
        at = 0
        for size in sizes:
            if at >= n:
                break
            guard.write(y[:, at:at + size])
            at += size
        if at < n:
            guard.write(y[:, at:])
        guard.close()
        outputs.append(np.concatenate(got, axis=1))
    assert all(o.shape == y.shape for o in outputs)
    assert np.array_equal(outputs[0], outputs[1]) and np.array_equal(outputs[0], outputs[2])
    out = outputs[0]
    far = np.ones(n, bool)
    for s, e in spans:
        far[s - 500:e + 500] = False
    assert np.array_equal(out[:, far], y[:, far])
    for s, e in spans:
        assert np.abs(out[:, s:e]).max() < np.abs(music).max() * 10 ** (3.5 / 20)


def test_fill_guard_holds_a_bounded_stretch_of_a_long_output_full_of_gaps(monkeypatch):
    """A dropout every 1.5 s for two minutes: the held samples stay bounded (groups of at most
    GUARD_GROUP_SECONDS), and every burst is still bounded."""
    from a2sb import output
    from a2sb.output import FillGuard

    monkeypatch.setattr(output, "GUARD_GROUP_SECONDS", 10.0)
    rng = np.random.default_rng(1)
    n = 120 * RATE
    y = (0.1 * rng.standard_normal((1, n))).astype(np.float32)
    spans = [(int(t * RATE), int(t * RATE) + 3000) for t in np.arange(1.0, 119.0, 1.5)]
    for s, e in spans:
        y[:, s:e] *= 30
    got, held = [], []
    guard = FillGuard(spans, spans, n, got.append)
    for at in range(0, n, 50000):
        guard.write(y[:, at:at + 50000])
        held.append(guard.held.shape[1])
    guard.close()
    out = np.concatenate(got, axis=1)
    assert out.shape == y.shape and max(held) < 14 * RATE
    assert all(np.abs(out[:, s:e]).max() < 0.1 * 4 * 10 ** (3.5 / 20) for s, e in spans)
