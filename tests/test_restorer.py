"""Restorer / restore: what is kept, what is generated, lengths, rates, channels, bad input."""

import numpy as np
import pytest
import soundfile as sf
import torch
from scipy.signal import butter, sosfiltfilt

from a2sb import analysis, detect, levels, output
from a2sb.errors import A2SBError
from a2sb.model import A2SBModel
from a2sb.model import load_model as a2sb_load
from a2sb.model import save_model as a2sb_save
from a2sb.network import preset
from a2sb.representation import istft, representation_to_spec, stft, to_representation
from a2sb.restorer import A2SBWarning, Restorer, auto_batch_size, restore
from a2sb.sampler import PositionalNoise, count_windows, sample, time_grid

SR = 44100
FAST = dict(steps=3, window=32, hop=16, batch_size=8)  # tiny windows keep the network cheap


class ToyModel(A2SBModel):
    """The tiny architecture with a cheap deterministic stand-in for the network: these tests are about
    the restoration around the network. Counts the windows it is asked for."""

    def __init__(self):
        super().__init__(preset("tiny"), t_cutoffs=[0.5])
        self.windows = 0

    def predict_noise(self, x, t, expert=None):
        self.windows += x.shape[0]
        t = torch.as_tensor(t, dtype=x.dtype).reshape(-1, 1, 1, 1)
        return 0.5 * torch.tanh(x + 0.3 * torch.roll(x, 1, -1) + t)


@pytest.fixture
def toy():
    return ToyModel().eval()


def restore_audio(x, rate, *, cutoff=None, gaps=None, model, seed=0, **settings):
    """Restorer.restore_audio on (channels, samples) arrays, without the peak-safe gain (these tests are
    about the restoration; the gain has its own)."""
    restorer = Restorer(model=model, seed=seed, peak_safety=False, **settings)
    y, rate = restorer.restore_audio(np.asarray(x).T, rate, cutoff=cutoff, gaps=gaps)
    return (y[None] if y.ndim == 1 else y.T), rate


def music(seconds=1.0, channels=2, rate=SR, seed=0):
    """Harmonic tones plus a little noise, different per channel."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    out = []
    for c in range(channels):
        f0 = 220 * (1 + 0.5 * c)
        x = sum(0.2 / k * np.sin(2 * np.pi * f0 * k * t + k) for k in range(1, 12))
        out.append(x + 0.01 * rng.standard_normal(len(t)))
    return np.asarray(out, dtype=np.float32)


def lowpass(x, hz, rate=SR):
    return sosfiltfilt(butter(10, hz, fs=rate, output="sos"), x, axis=-1).astype(np.float32)


def snr_db(reference, estimate):
    return 10 * np.log10(np.sum(np.abs(reference) ** 2) / np.sum(np.abs(estimate - reference) ** 2))


def test_bwe_keeps_the_band_below_the_cutoff(toy):
    x = lowpass(music(1.0), 4000)
    y, rate = restore_audio(x, SR, cutoff=4000, model=toy, **FAST)
    assert rate == SR and y.shape == x.shape and y.dtype == np.float32
    spec_in, spec_out = stft(torch.from_numpy(x)).numpy(), stft(torch.from_numpy(y)).numpy()
    first = int(2048 * 4000 / SR) + 1  # FFT bin of the first generated row
    below = slice(1, first - 3)  # the Hann main lobe spreads the new band over two bins
    for c in range(2):
        assert snr_db(spec_in[c, below], spec_out[c, below]) >= 30
    assert np.sum(np.abs(spec_out[:, first + 3:]) ** 2) > 10 * np.sum(np.abs(spec_in[:, first + 3:]) ** 2)


def test_restore_audio_is_the_reference_sampler_on_the_whole_picture(toy):
    """The streaming restoration == full-array picture, noise fill, sampler.sample and inverse STFT (with
    the input's DC row, which the picture leaves out)."""
    x = lowpass(music(0.6, channels=1), 6000)
    y, _ = restore_audio(x, SR, cutoff=6000, model=toy, seed=3, **FAST)
    length = x.shape[1]
    extended = np.pad(x, ((0, 0), (0, -length % 512)), mode="reflect")
    x0 = to_representation(torch.from_numpy(extended))
    width = x0.shape[-1]
    mask = torch.zeros(1, 1, 1024, width)
    mask[:, :, int(2048 * 6000 / SR):] = 1
    x1 = x0 * (1 - mask) + mask * 0.5 * PositionalNoise(3, 1024, 3).frames(-1, 0, [0], 0, width)
    out = sample(lambda w, t: toy.predict_noise(w, t), x1, mask, time_grid(3), window=32, hop=16, seed=3)
    spec = representation_to_spec(out, phase_fix=True)
    spec[..., :1, :] = stft(torch.from_numpy(extended))[..., :1, :]
    reference = istft(spec)[:, :length].numpy()
    assert np.abs(y - reference).max() <= 1e-4


def gap_edges(start, end):
    return int(round(start * SR)), int(round(end * SR))


def test_inpainting_copies_the_input_outside_the_gaps(toy):
    x = music(2.0)
    gaps = [(0.5, 0.62), (1.3, 1.5)]
    damaged = x.copy()
    for start, end in gaps:
        s, e = gap_edges(start, end)
        damaged[:, s:e] = 0
    # the splice itself, without the level correction (which makes the toy's fill as bright as the music)
    y, rate = restore_audio(damaged, SR, gaps=gaps, model=toy, level_match=False, **FAST)
    assert rate == SR and y.shape == x.shape
    fade = int(round(output.FADE_SECONDS * SR))
    outside = np.ones(x.shape[1], bool)
    for start, end in gaps:
        s, e = gap_edges(start, end)
        outside[s - fade:e + fade] = False
        inside = y[:, s:e]
        pieces = inside[:, : inside.shape[1] // 441 * 441].reshape(2, -1, 441)
        assert (np.sqrt((pieces**2).mean(axis=-1)) > 1e-3).all()  # filled everywhere, every 10 ms
        # no clicks: jumps around the edges stay within the signal's own sample-to-sample range
        limit = np.abs(np.diff(x, axis=1)).max()
        for edge in (s, e):
            assert np.abs(np.diff(y[:, edge - 2 * fade:edge + 2 * fade], axis=1)).max() <= limit
    assert np.array_equal(y[:, outside], damaged[:, outside])


def test_context_level_gain_undoes_a_known_per_bin_level_error():
    rng = np.random.default_rng(0)
    context = torch.from_numpy(rng.rayleigh(1.0, (2, 64, 40)))
    error_db = np.linspace(-15, 15, 64)  # the fill is this much too loud, bin by bin (within the bounds)
    fill = torch.from_numpy(rng.rayleigh(1.0, (2, 64, 12)) * 10 ** (error_db[:, None] / 20))
    gain = levels.context_level_gain(fill, context, rows=1, floor=0.0)
    # exact: the gain is the ratio of the two geometric means
    expected = np.exp(np.log(context.numpy()).mean(-1) - np.log(fill.numpy()).mean(-1))
    assert np.allclose(gain.numpy(), expected, rtol=1e-9)
    assert np.abs(20 * np.log10(gain.numpy()) + error_db).mean() < 3  # ≈ undoes the error (12 frames)
    # bounded, and smoothing a constant correction leaves it unchanged
    bounded = levels.context_level_gain(fill * 1e6, context, rows=1, floor=0.0, bounds_db=(-50.0, 10.0))
    assert np.allclose(20 * np.log10(bounded.numpy()), -50.0)
    flat = levels.context_level_gain(context[..., :12] * 0.1, context[..., :12], rows=9, floor=0.0)
    assert np.allclose(flat.numpy(), 10.0)


def band_level_db(y, lo_hz, hi_hz, s, e, power=False):
    """Mean log level (dB) over the bins lo..hi Hz of the 2048-point frames centred inside [s, e); with
    `power`, the level of their mean power instead."""
    spec = stft(torch.from_numpy(y)).abs().numpy()  # (channels, 1025, frames), hop 512
    frames = [j for j in range(spec.shape[-1]) if s <= 512 * j < e]
    bins = slice(int(lo_hz * 2048 / SR), int(hi_hz * 2048 / SR))
    if power:
        return float(10 * np.log10(np.mean(spec[:, bins][..., frames] ** 2) + 1e-18))
    return float(np.mean(20 * np.log10(spec[:, bins][..., frames] + 1e-9)))


def test_level_match_gives_the_fill_the_spectral_level_of_the_context(toy):
    x = lowpass(music(3.0), 6000)  # nothing above 6 kHz around the gap
    s, e = gap_edges(1.4, 1.7)
    damaged = x.copy()
    damaged[:, s:e] = 0
    raw, _ = restore_audio(damaged, SR, gaps=[(1.4, 1.7)], model=toy, level_match=False, **FAST)
    fixed, _ = restore_audio(damaged, SR, gaps=[(1.4, 1.7)], model=toy, **FAST)
    high = [band_level_db(y, 9000, 20000, s, e) for y in (x, raw, fixed)]
    assert high[1] > high[0] + 60  # the toy's fill is broadband noise
    assert high[2] < high[1] - 60  # the correction removes what the context does not have
    for lo, hi in ((100, 1000), (1000, 5000)):  # and brings the music's bands to the context's level (power:
        # a noise fill of a tonal context's power has a higher mean log level, see levels.make_fill_safe)
        assert abs(band_level_db(fixed, lo, hi, s, e, True) - band_level_db(x, lo, hi, s, e, True)) < 4
    outside = np.ones(x.shape[1], bool)
    fade = int(round(output.FADE_SECONDS * SR))
    outside[s - fade:e + fade] = False
    assert np.array_equal(fixed[:, outside], damaged[:, outside])  # the input is kept outside the gap


def test_band_level_gain_undoes_a_known_per_row_level_error():
    g = torch.Generator().manual_seed(0)
    reference = torch.rand(2, 1024, 40, generator=g, dtype=torch.float64) + 0.1
    constant = levels.band_level_gain(reference * 10 ** (-25 / 20), reference, first_row=200, floor=0.0)
    assert torch.allclose(constant[:, 200:], torch.full((2, 824), 10 ** (25 / 20), dtype=constant.dtype))
    # a level error that varies across the band is undone up to its variation within a third of an octave
    error_db = torch.linspace(-30, 10, 1024, dtype=torch.float64)
    fill = reference * 10 ** (error_db / 20)[:, None]
    gain = levels.band_level_gain(fill, reference, first_row=200, floor=0.0)
    assert torch.equal(gain[:, :200], torch.ones(2, 200, dtype=gain.dtype))
    fixed_db = 20 * torch.log10(gain[:, 200:]) + error_db[200:]
    assert fixed_db.abs().max() < 3.0 and fixed_db.abs().median() < 0.6 < error_db[200:].abs().median()
    # bounded, and the band of a row at the edge holds no known rows: a louder known band is ignored
    assert float(levels.band_level_gain(fill * 1e4, reference, 200, floor=0.0).min()) == pytest.approx(0.01)
    louder_below = fill.clone()
    louder_below[:, :200] *= 100
    assert torch.allclose(levels.band_level_gain(louder_below, reference, 200, floor=0.0), gain)


def test_bwe_level_match_gives_the_band_the_level_of_band_replication(toy):
    from a2sb.baselines import bwe_sbr
    from a2sb.metrics import level_bias

    x = lowpass(music(3.0), 4000)
    raw, _ = restore_audio(x, SR, cutoff=4000, model=toy, **FAST)
    assert toy.default_band_level == "off"
    fixed, _ = restore_audio(x, SR, cutoff=4000, model=toy, band_level="match", **FAST)
    capped, _ = restore_audio(x, SR, cutoff=4000, model=toy, band_level="cap", **FAST)
    replicated = bwe_sbr(x, SR, 4000)
    raw_bias, capped_bias = level_bias(replicated, raw, 4000), level_bias(replicated, capped, 4000)
    assert raw_bias.min() < -6 and raw_bias.max() > 6  # the toy's band is too quiet and too loud
    assert np.abs(level_bias(replicated, fixed, 4000)).max() < 2.5  # statistics of other STFTs differ a little
    loud, quiet = raw_bias > 6, raw_bias < -6  # cap: only what is louder than band replication comes down
    # (both passes are capped, so a band whose resynthesis loses power can end a few dB below the level)
    assert capped_bias[loud].max() < 1.5 and capped_bias[loud].min() > -5.0
    assert np.abs(capped_bias[quiet] - raw_bias[quiet]).max() < 1.0
    from a2sb.cli.args import BAND_LEVEL_CHOICES
    from a2sb.model import BAND_LEVELS

    assert BAND_LEVEL_CHOICES == BAND_LEVELS  # the command line offers the model's modes
    toy.default_band_level = "cap"  # a model's default is used
    assert np.array_equal(restore_audio(x, SR, cutoff=4000, model=toy, **FAST)[0], capped)
    with pytest.raises(A2SBError, match="band level"):
        restore_audio(x, SR, cutoff=4000, model=toy, band_level="loud", **FAST)
    spec_raw, spec_fixed = stft(torch.from_numpy(raw)).numpy(), stft(torch.from_numpy(fixed)).numpy()
    below = slice(1, int(2048 * 4000 / SR) - 3)
    for c in range(2):  # the known band is untouched
        assert snr_db(spec_raw[c, below], spec_fixed[c, below]) >= 30


def test_band_level_offsets_per_octave_and_between_cutoffs():
    table = {"cutoffs_hz": [4000, 8000], "octaves_db": [[1.0, 2.0, 3.0], [10.0, 20.0]]}
    rows = np.arange(1024)
    freqs = (rows + 1) * SR / 2048  # picture row r holds STFT bin r + 1
    at4 = levels.octave_table_db(table, 4000).numpy()
    expected = np.select([freqs <= 4000, freqs < 8000, freqs < 16000], [0.0, 1.0, 2.0], 3.0)
    assert np.array_equal(at4, expected)
    at8 = levels.octave_table_db(table, 8000).numpy()
    assert np.array_equal(at8, np.select([freqs <= 8000, freqs < 16000], [0.0, 10.0], 20.0))
    # halfway in log2 of the cutoff: the mean of the two tables, octave by octave above that cutoff
    mid = levels.octave_table_db(table, 4000 * 2**0.5).numpy()
    fc = 4000 * 2**0.5
    assert np.allclose(mid, np.select([freqs <= fc, freqs < 2 * fc], [0.0, 5.5], 11.0))
    assert np.array_equal(levels.octave_table_db(table, 2000).numpy()[freqs > 16000], np.full(
        (freqs > 16000).sum(), 3.0))  # below the first cutoff: its table, the last octave's value above
    assert np.array_equal(levels.octave_table_db(table, 12000).numpy(),
                          np.where(freqs <= 12000, 0.0, 10.0))  # above the last: its table


def test_band_level_offsets_lower_the_band_level_reference(toy):
    from a2sb.metrics import level_bias

    x = lowpass(music(3.0), 4000)
    matched, _ = restore_audio(x, SR, cutoff=4000, model=toy, band_level="match", **FAST)
    toy.band_level_offsets = {"cutoffs_hz": [4000.0], "octaves_db": [[8.0]]}  # every octave above 4 kHz
    constant, _ = restore_audio(x, SR, cutoff=4000, model=toy, band_level="match", **FAST)
    assert np.allclose(level_bias(matched, constant, 4000), -8.0, atol=0.5)  # per octave, dB
    toy.band_level_offsets = {"cutoffs_hz": [4000.0], "octaves_db": [[4.0, 12.0]]}
    offset, _ = restore_audio(x, SR, cutoff=4000, model=toy, band_level="match", **FAST)
    assert np.allclose(level_bias(matched, offset, 4000), [-4.0, -12.0, -12.0], atol=1.0)
    spec_a, spec_b = stft(torch.from_numpy(matched)).numpy(), stft(torch.from_numpy(offset)).numpy()
    below = slice(1, int(2048 * 4000 / SR) - 3)
    for c in range(2):  # the known band is untouched
        assert snr_db(spec_a[c, below], spec_b[c, below]) >= 30


def test_band_gain_raises_the_regenerated_rows_by_its_db():
    rows, first = 1024, 185  # row 185 holds STFT bin 186, the first above 4 kHz
    x0 = torch.rand(2, 3, rows, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 0.5 + 0.1
    gain_db = levels.octave_table_db({"cutoffs_hz": [4000.0], "octaves_db": [[3.0, 6.0]]}, 4000)
    loud = x0.clone()
    loud[:, 0] *= 10.0  # band replication 80 dB louder: the cap (at most 0 dB) never bites
    _, _, raised = levels.match_band_level(0, 12, x0, loud, first, (levels.BAND_LEVEL_DB[0], 0.0), None, gain_db)
    power_ratio_db = 20 * torch.log10((raised[:, 0] / x0[:, 0]) ** 4)  # |S|^0.25 back to |S|; dB of power
    assert torch.allclose(power_ratio_db, gain_db[:, None].expand(2, rows, 12).double(), atol=1e-9)
    assert torch.equal(raised[:, 1:], x0[:, 1:]) and float(gain_db[:first].abs().max()) == 0.0
    assert float(gain_db[-1]) == 6.0 and float(gain_db[first + 1]) == 3.0
    quiet = x0.clone()
    quiet[:, 0] *= 10 ** (-10 / 80)  # band replication 10 dB quieter: the cap takes the raised band down to it
    _, _, capped = levels.match_band_level(0, 12, x0, quiet, first, (levels.BAND_LEVEL_DB[0], 0.0), None, gain_db)
    _, _, plain = levels.match_band_level(0, 12, x0, quiet, first, (levels.BAND_LEVEL_DB[0], 0.0), None, None)
    diff_db = (20 * torch.log10((capped[:, 0] / plain[:, 0]) ** 4))[:, first:]
    # the same level, but within a third of an octave of the table's step at 8 kHz (the cap's band averages)
    assert float((diff_db.abs() < 0.01).double().mean()) > 0.85 and float(diff_db.abs().max()) < 3.0


def test_band_gain_acts_with_the_band_level_correction_only(toy):
    from a2sb.metrics import level_bias

    x = lowpass(music(3.0), 4000)
    capped, _ = restore_audio(x, SR, cutoff=4000, model=toy, band_level="cap", **FAST)
    raw, _ = restore_audio(x, SR, cutoff=4000, model=toy, band_level="off", **FAST)
    toy.band_gain = {"cutoffs_hz": [4000.0], "octaves_db": [[-12.0]]}  # lower: the cap cannot undo it
    lowered, _ = restore_audio(x, SR, cutoff=4000, model=toy, band_level="cap", **FAST)
    raw_again, _ = restore_audio(x, SR, cutoff=4000, model=toy, band_level="off", **FAST)
    assert np.array_equal(raw, raw_again)  # "off": the model's band as it comes, no table
    bias = level_bias(capped, lowered, 4000)
    # lower in every octave, by at most the table's 12 dB: less where the cap had already lowered the toy's
    # band (above 16 kHz), about 12 dB where it had not (4-8 kHz)
    assert np.all(bias < -1.0) and np.all(bias > -13.0) and -13.0 < bias[0] < -10.0, bias
    spec_a, spec_b = stft(torch.from_numpy(capped)).numpy(), stft(torch.from_numpy(lowered)).numpy()
    below = slice(1, int(2048 * 4000 / SR) - 3)
    for c in range(2):  # the known band is untouched
        assert snr_db(spec_a[c, below], spec_b[c, below]) >= 30


def test_fast_inpainting_runs_only_the_windows_near_gaps(toy):
    x = music(6.0, channels=1)
    y, _ = restore_audio(x, SR, gaps=[(3.0, 3.1)], model=toy, **FAST)
    frames = 1 + -(-x.shape[1] // 512)
    all_windows = count_windows(frames, 32, 16) * 2  # 2 evaluations
    assert 0 < toy.windows <= 3 * 2 and 10 * toy.windows <= all_windows  # 3 windows touch the gap
    s, e = gap_edges(3.0, 3.1)
    fade = int(round(output.FADE_SECONDS * SR))
    assert np.array_equal(y[:, :s - fade], x[:, :s - fade]) and np.array_equal(y[:, e + fade:], x[:, e + fade:])
    assert not np.array_equal(y[:, s:e], x[:, s:e])
    full, _ = restore_audio(x, SR, gaps=[(3.0, 3.1)], model=toy, fast_inpainting=False, **FAST)
    assert toy.windows > all_windows and np.abs(full - y).max() <= 1e-5  # every window run: same result


def test_gap_longer_than_a_window_is_fully_restored(toy):
    x = music(3.0, channels=1)
    damaged = x.copy()
    s, e = gap_edges(0.8, 2.0)  # 1.2 s: more than three 32-frame windows
    damaged[:, s:e] = 0
    with pytest.warns(A2SBWarning, match="longer than 1 s"):
        y, _ = restore_audio(damaged, SR, gaps=[(0.8, 2.0)], model=toy, **FAST)
    pieces = y[:, s:e][:, : (e - s) // 441 * 441].reshape(-1, 441)
    assert (np.sqrt((pieces**2).mean(axis=-1)) > 1e-3).all()


def test_bwe_and_gaps_together(toy):
    x = lowpass(music(1.0), 5000)
    s, e = gap_edges(0.4, 0.5)
    x[:, s:e] = 0
    y, _ = restore_audio(x, SR, cutoff=5000, gaps="0.4-0.5", model=toy, **FAST)
    assert y.shape == x.shape
    assert np.sqrt((y[:, s:e] ** 2).mean()) > 1e-3


def test_arrays_shaped_like_soundfiles(toy, tmp_path):
    """Restorer.restore_audio takes and gives (samples,) or (samples, channels), as soundfile does."""
    x = lowpass(music(0.5, channels=1), 8000)
    restorer = Restorer(model=toy, **FAST)
    y, rate = restorer.restore_audio(x[0], SR, cutoff=8000, gaps=None)
    assert y.shape == (x.shape[1],) and rate == SR
    stereo = lowpass(music(0.5), 8000).T
    y, rate = restorer.restore_audio(stereo, SR, cutoff=8000, gaps=None)
    assert y.shape == stereo.shape
    sf.write(tmp_path / "out.wav", y, rate)  # as is
    with pytest.raises(A2SBError, match="3 channels"):
        restorer.restore_audio(np.zeros((1000, 3), np.float32), SR, cutoff=None, gaps=None)


def test_short_audio_keeps_its_length(toy):
    x = music(0.03, channels=2)
    y, _ = restore_audio(x, SR, cutoff=8000, model=toy, **FAST)
    assert y.shape == x.shape


def test_other_rates(toy):
    """The output has the input's rate (44.1 kHz only when a band above the input's Nyquist is made)."""
    x48 = music(1.0, rate=48000)
    gap = [(0.4, 0.5)]
    y, rate = restore_audio(x48, 48000, gaps=gap, model=toy, **FAST)
    assert rate == 48000 and y.shape == x48.shape
    s, e = int(0.4 * 48000), int(0.5 * 48000)
    fade = int(round(output.FADE_SECONDS * 48000))
    assert np.array_equal(y[:, :s - fade - 1], x48[:, :s - fade - 1])  # copied at the input's own rate
    assert np.array_equal(y[:, e + fade + 1:], x48[:, e + fade + 1:])
    y, rate = restore_audio(lowpass(x48, 8000, rate=48000), 48000, cutoff=8000, model=toy, **FAST)
    assert rate == 48000 and y.shape == x48.shape
    x16 = lowpass(music(0.5, rate=16000), 7000, rate=16000)
    with pytest.warns(A2SBWarning, match="written at 44.1 kHz"):
        y, rate = restore_audio(x16, 16000, cutoff=7000, model=toy, **FAST)
    assert rate == SR and y.shape == (2, round(x16.shape[1] * SR / 16000))
    y, rate = restore_audio(x16, 16000, gaps=[(0.2, 0.25)], model=toy, **FAST)
    assert rate == 16000 and y.shape == x16.shape


@pytest.mark.parametrize("rate", [48000, 96000])
def test_cutoff_is_found_in_audio_above_44k(rate):
    """A lowpassed recording at 48 or 96 kHz: the cutoff is found as at 44.1 kHz (it used to be "full band":
    the detector took the empty band above 22.05 kHz of the resampled copy for the music's edge)."""
    import soxr

    x, sr = sf.read("examples/example_lowpassed.flac", dtype="float32")
    at44 = analysis.plan_array(x.T, sr, "auto", None).cutoff_hz
    y = soxr.resample(x, sr, rate).astype(np.float32)
    plan = analysis.plan_array(y.T, rate, "auto", None)
    assert 3500 < at44 < 4500 and plan.cutoff_hz == pytest.approx(at44, rel=0.03), (at44, plan.cutoff_hz)
    assert "the band above it is regenerated" in plan.describe()


def test_same_seed_same_output_other_seed_other_output(toy):
    x = lowpass(music(0.5, channels=1), 6000)
    a, _ = restore_audio(x, SR, cutoff=6000, model=toy, seed=1, **FAST)
    b, _ = restore_audio(x, SR, cutoff=6000, model=toy, seed=1, **FAST)
    c, _ = restore_audio(x, SR, cutoff=6000, model=toy, seed=2, **FAST)
    d, _ = restore_audio(x, SR, cutoff=6000, model=toy, seed=1, sampler="ode", **FAST)
    e, _ = restore_audio(x, SR, cutoff=6000, model=toy, seed=1, sampler="ode", **FAST)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.array_equal(d, e) and not np.array_equal(a, d)


def test_the_models_default_sampler_is_used_and_saved(toy, tmp_path):
    """sampler=None takes the model's default; a saved bundle keeps it."""
    x = lowpass(music(0.5, channels=1), 6000)
    sde, _ = restore_audio(x, SR, cutoff=6000, model=toy, seed=1, sampler="sde", **FAST)
    ode, _ = restore_audio(x, SR, cutoff=6000, model=toy, seed=1, sampler="ode", **FAST)
    toy.default_sampler = "ode"
    default, _ = restore_audio(x, SR, cutoff=6000, model=toy, seed=1, **FAST)
    assert np.array_equal(default, ode) and not np.array_equal(default, sde)
    model = A2SBModel(preset("tiny"), default_sampler="ode", default_steps=7, default_band_level="cap")
    a2sb_save(model, tmp_path / "m")
    again = a2sb_load(tmp_path / "m")
    assert (again.default_sampler, again.default_steps, again.default_band_level) == ("ode", 7, "cap")
    assert again.band_level_offsets is None and "band_level_offsets" not in again.bundle_config()["sampling"]
    table = {"cutoffs_hz": [4000, 8000], "octaves_db": [[1, 2.5], [3]]}
    a2sb_save(A2SBModel(preset("tiny"), band_level_offsets=table), tmp_path / "t")
    assert a2sb_load(tmp_path / "t").band_level_offsets == {"cutoffs_hz": [4000.0, 8000.0],
                                                           "octaves_db": [[1.0, 2.5], [3.0]]}
    a2sb_save(A2SBModel(preset("tiny"), band_gain={"cutoffs_hz": [4000], "octaves_db": [[2, 5]]}), tmp_path / "g")
    again = a2sb_load(tmp_path / "g")
    assert again.band_gain == {"cutoffs_hz": [4000.0], "octaves_db": [[2.0, 5.0]]} and again.band_level_offsets is None
    with pytest.raises(A2SBError, match="band gain"):
        A2SBModel(preset("tiny"), band_gain={"cutoffs_hz": [4000], "octaves_db": [[float("nan")]]})
    for bad in ({"cutoffs_hz": [8000, 4000], "octaves_db": [[1], [2]]}, {"cutoffs_hz": [4000], "octaves_db": [[]]},
                {"cutoffs_hz": [4000]}, {"cutoffs_hz": [4000], "octaves_db": [["x"]]}):
        with pytest.raises(A2SBError, match="band level offsets"):
            A2SBModel(preset("tiny"), band_level_offsets=bad)
    with pytest.raises(A2SBError, match="sampler"):
        A2SBModel(preset("tiny"), default_sampler="euler")
    with pytest.raises(A2SBError, match="band level"):
        A2SBModel(preset("tiny"), default_band_level="loud")


def test_nothing_to_restore_returns_the_input(toy):
    x = music(0.3)
    assert "nothing to restore" in analysis.plan_array(x, SR, None, None).findings
    y, rate = restore_audio(x, SR, model=toy)
    assert np.array_equal(y, x) and toy.windows == 0


def test_auto_detection_is_used(toy, monkeypatch):
    class Stub:
        @staticmethod
        def estimate_cutoff(audio, rate):
            return detect.CutoffEstimate(None)

        @staticmethod
        def detect_gaps(audio, rate, min_gap=0.02):
            return [(0.3, 0.4)]

    monkeypatch.setattr(analysis, "detect", Stub)
    x = music(1.0)
    y, _ = restore_audio(x, SR, cutoff="auto", gaps="auto", model=toy, **FAST)
    changed = np.flatnonzero((y != x).any(axis=0))
    s, e = gap_edges(0.3, 0.4)
    fade = int(round(output.FADE_SECONDS * SR))
    assert changed.min() >= s - fade and changed.max() < e + fade


def test_long_audio_is_analysed_in_chunks(monkeypatch):
    """Beyond WHOLE_DETECT_SECONDS, gaps come from overlapping chunks (a gap across a chunk border is
    found once) and the cutoff from a summary of excerpts."""
    monkeypatch.setattr(analysis, "WHOLE_DETECT_SECONDS", 1.0)
    monkeypatch.setattr(analysis, "DETECT_CHUNK_SECONDS", 3.0)
    monkeypatch.setattr(analysis, "DETECT_OVERLAP_SECONDS", 2.0)
    monkeypatch.setattr(analysis, "CUTOFF_SUMMARY_SECONDS", 4.0)
    x = lowpass(music(8.0, channels=2), 5000)
    s, e = gap_edges(5.9, 6.1)  # across the border at 6 s
    x[:, s:e] = 0
    seen = []

    class Spy:
        @staticmethod
        def estimate_cutoff(audio, rate):
            seen.append(audio.shape[1])
            return detect.CutoffEstimate(5000.0)

        @staticmethod
        def detect_gaps(audio, rate, min_gap=0.02):
            start = None
            silent = np.flatnonzero((audio == 0).all(axis=0))
            if len(silent) and 0 < silent[0] and silent[-1] < audio.shape[1] - 1:
                start = (silent[0] / rate, (silent[-1] + 1) / rate)
            return [start] if start else []

    monkeypatch.setattr(analysis, "detect", Spy)
    result = analysis.analyse(analysis.chunks_of_array(x, int(3.0 * SR)), 2, SR, x.shape[1],
                              want_cutoff=True, want_gaps=True)
    assert len(result.gaps) == 1 and abs(result.gaps[0][0] - 5.9) < 1e-3 and abs(result.gaps[0][1] - 6.1) < 1e-3
    assert result.cutoff == 5000.0 and seen[0] < x.shape[1]


@pytest.mark.parametrize("audio,options,message", [
    (np.full((2, 1000), np.nan, np.float32), {}, "no finite samples"),
    (np.zeros((2, 0), np.float32), {}, "empty"),
    (np.zeros((1, 4410), np.float32), {"cutoff": 30000}, "Nyquist"),
    (np.zeros((1, 4410), np.float32), {"gaps": [(0.05, 0.2)]}, "outside"),
    (np.zeros((1, 44100), np.float32), {"gaps": "0.1-0.3,0.2-0.4"}, "overlap"),
    (np.zeros((1, 44100), np.float32), {"gaps": "0.3-0.1"}, "invalid"),
    (np.zeros((1, 44100), np.float32), {"cutoff": "high"}, "cutoff"),
    (np.zeros((1, 44100), np.float32), {"cutoff": 4000, "sampler": "euler"}, "sampler"),
    (np.zeros((1, 44100), np.float32), {"cutoff": 4000, "steps": 1}, "steps"),
    (np.zeros((1, 44100), np.float32), {"cutoff": 4000, "window": 48, "hop": 16}, "multiple of 32"),
])
def test_bad_input_raises_a2sb_error(toy, audio, options, message):
    with pytest.raises(A2SBError, match=message):
        restore_audio(audio, SR, model=toy, **options)


def test_cutoff_above_the_input_nyquist_is_an_error(toy):
    with pytest.raises(A2SBError, match="Nyquist frequency of"):
        restore_audio(np.zeros((1, 16000), np.float32), 16000, cutoff=10000, model=toy)


def test_clipping_is_reported_and_partial_nan_cleaned(toy):
    x = music(0.5, channels=1)
    x[0, 1000:1010] = 1.0
    x[0, 2000] = np.nan
    with pytest.warns(A2SBWarning) as record:
        y, _ = restore_audio(x, SR, cutoff=8000, model=toy, **FAST)
    text = " ".join(str(w.message) for w in record)
    assert "clipped" in text and "NaN" in text
    assert np.isfinite(y).all()


def test_restore_file_without_output_returns_the_array(toy, tmp_path):
    x = lowpass(music(0.5), 6000)
    path = tmp_path / "in.wav"
    sf.write(path, x.T, SR, subtype="FLOAT")
    y, rate = restore(path, cutoff=6000, gaps=None, model=toy, peak_safety=False, **FAST)
    z, _ = restore_audio(x, SR, cutoff=6000, model=toy, **FAST)
    assert rate == SR and np.array_equal(y.T, z)


def test_restore_file_streams_to_the_same_result(toy, tmp_path):
    x = lowpass(music(1.0), 6000)
    path = tmp_path / "in.wav"
    sf.write(path, x.T, SR, subtype="FLOAT")
    report = restore(path, tmp_path / "out.wav", cutoff=6000, gaps="off", model=toy, peak_safety=False, **FAST)
    y, rate = sf.read(report.output, dtype="float32", always_2d=True)
    z, _ = restore_audio(x, SR, cutoff=6000, model=toy, **FAST)
    assert rate == SR and np.abs(y.T - z).max() <= 1e-6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav", "out.wav"]  # no temporary left over


def test_a_plan_for_other_audio_is_refused(toy, tmp_path):
    short, long = tmp_path / "short.wav", tmp_path / "long.wav"
    sf.write(short, music(0.5).T, SR, subtype="FLOAT")
    sf.write(long, music(1.0).T, SR, subtype="FLOAT")
    restorer = Restorer(model=toy, **FAST)
    plan = restorer.analyse(long, cutoff=6000, gaps="0.7-0.8")
    with pytest.raises(A2SBError, match="plan was made for other audio .*long.wav: 44100 samples"):
        restorer.restore_file(short, tmp_path / "out.wav", plan=plan)
    assert not (tmp_path / "out.wav").exists()
    with pytest.raises(A2SBError, match="plan was made for other audio"):
        restorer.restore_audio(music(0.5).T, 48000, plan=plan)
    restorer.restore_file(long, tmp_path / "out.wav", plan=plan)  # its own file


@pytest.mark.parametrize("options", [dict(cutoff=6000, gaps=None), dict(cutoff=None, gaps="0.3-0.4")])
def test_restore_file_at_48k_matches_the_array_api(toy, tmp_path, options):
    """Files are resampled while streaming; the result equals resampling the whole array first."""
    x = lowpass(music(1.0, rate=48000), 6000, rate=48000)
    path = tmp_path / "in48.wav"
    sf.write(path, x.T, 48000, subtype="FLOAT")
    report = restore(path, tmp_path / "out.wav", model=toy, peak_safety=False, **options, **FAST)
    y, rate = sf.read(report.output, dtype="float32", always_2d=True)
    z, rate_z = restore_audio(x, 48000, model=toy, **options, **FAST)
    assert rate == rate_z and y.T.shape == z.shape and np.abs(y.T - z).max() <= 1e-5


def test_auto_batch_size_is_positive(toy):
    assert 1 <= auto_batch_size(toy, 256, torch.device("cpu")) <= 4


def test_gaps_across_the_write_chunk_boundaries(toy, monkeypatch):
    """Gaps over the 2^18- and 2·2^18-sample boundaries of the output chunks (issue 22: a ValueError):
    the same result as one chunk for the whole file, the input kept outside the gaps."""
    x = music(12.5, channels=2)
    edge = 1 << 18
    gaps = [((edge - 3000) / SR, (edge + 6000) / SR), ((2 * edge - 200) / SR, (2 * edge + 100) / SR),
            ((2 * edge + 5000) / SR, (2 * edge + 9000) / SR)]
    y, _ = restore_audio(x, SR, gaps=gaps, model=toy, **FAST)
    monkeypatch.setattr(output, "WRITE_CHUNK", 1 << 22)
    whole, _ = restore_audio(x, SR, gaps=gaps, model=toy, **FAST)
    assert np.array_equal(y, whole)
    fade = int(round(output.FADE_SECONDS * SR))
    outside = np.ones(x.shape[1], bool)
    for start, end in gaps:
        s, e = gap_edges(start, end)
        outside[s - fade:e + fade] = False
        assert not np.array_equal(y[:, s:e], x[:, s:e])
    assert np.array_equal(y[:, outside], x[:, outside])


def test_quality_presets_scale_the_network_calls(toy):
    assert toy.default_steps == 50  # 49 network calls
    steps = {q: Restorer(model=toy, quality=q).settings(2).steps for q in ("fast", "default", "best")}
    assert steps == {"fast": 25, "default": 50, "best": 99}
    toy.default_steps = 3  # the bundled model's: 2 calls
    assert [Restorer(model=toy, quality=q).settings(1).steps for q in ("fast", "default", "best")] == [2, 3, 5]
    assert Restorer(model=toy, quality="best", steps=4).settings(1).steps == 4  # an expert's steps win
    with pytest.raises(A2SBError, match="quality"):
        Restorer(model=toy, quality="ultra")


def test_clipping_with_peak_safety_off_is_reported(toy, tmp_path):
    """With peak safety off a loud result is written as it is: the samples an integer format clips are
    counted and said (a float output keeps them)."""
    x = lowpass(music(0.5), 6000)
    x = (1.5 * x / np.abs(x).max()).astype(np.float32)  # the input itself peaks above full scale
    path = tmp_path / "in.wav"
    sf.write(path, x.T, SR, subtype="FLOAT")
    report = restore(path, tmp_path / "out.flac", cutoff=6000, gaps="off", model=toy, peak_safety=False, **FAST)
    y, _ = sf.read(report.output, dtype="float32")
    over = int((np.abs(x) > 1.0).sum())
    assert report.gain == 1.0 and report.peak > 1.4
    assert report.clipped >= over // 2 and np.abs(y).max() <= 1.0
    assert "samples clipped" in report.describe()
    assert any("peak safety is off" in w and "clipped" in w for w in report.warnings)
    safe = restore(path, tmp_path / "safe.flac", cutoff=6000, gaps="off", model=toy, **FAST)
    assert safe.clipped == 0 and "clipped" not in " ".join(safe.warnings) and safe.gain < 1.0
    with pytest.warns(A2SBWarning, match="peak safety is off"):
        restore_audio(x, SR, cutoff=6000, gaps="off", model=toy, **FAST)


@pytest.mark.parametrize("options", [dict(cutoff=6000, gaps=None), dict(cutoff=6000, gaps="0.8-0.9")])
def test_the_sub_bass_is_kept(toy, options):
    """The picture has no DC row; a restoration that renders the whole output from it lost what the input
    has below ~45 Hz (here the 25 Hz tone came out 0.9 dB quieter; an MP3 of held-out music lost 9 dB in
    the DC bin). The input's DC row is put back: below 100 Hz the output is the input."""
    t = np.arange(int(2.0 * SR)) / SR
    bass = np.stack([0.3 * np.sin(2 * np.pi * 30 * t), 0.25 * np.sin(2 * np.pi * 25 * t + 1)])
    x = (lowpass(music(2.0), 6000) * 0.5 + bass).astype(np.float32)
    y, rate = restore_audio(x, SR, model=toy, **options, **FAST)
    below = butter(4, 100, fs=SR, output="sos")
    keep = slice(int(0.1 * SR), int(0.7 * SR))  # away from the ends and the gap
    ref, out = sosfiltfilt(below, x)[:, keep], sosfiltfilt(below, y)[:, keep]
    assert rate == SR and np.abs(out - ref).max() < 0.01 * np.abs(ref).max()


def test_no_sub_bass_from_a_damaged_gap(toy):
    """A gap given for a damaged passage (here a slow offset bump) with a band to regenerate: its DC row is
    not the input's, so the bump does not come through (0.64 of it did, without the fill bounds)."""
    x = (lowpass(music(2.0), 6000) * 0.5).astype(np.float32)
    s, e = int(1.0 * SR), int(1.2 * SR)
    x[:, s:e] += (0.8 * np.hanning(e - s)).astype(np.float32)
    y, _ = restore_audio(x, SR, cutoff=6000, gaps=[(1.0, 1.2)], model=toy, level_match=False, **FAST)
    below = butter(4, 40, fs=SR, output="sos")
    thump, out = sosfiltfilt(below, x)[:, s:e], sosfiltfilt(below, y)[:, s:e]
    assert np.abs(out).max() < 0.02 * np.abs(thump).max()
