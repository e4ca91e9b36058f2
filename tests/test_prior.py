"""The x1 prior: the published noise fill and our DSP estimate (band replication, similarity copy), in
training batches (a2sb.training.pictures.build_batch) and in restoration (a2sb.restorer), which must agree."""

import numpy as np
import pytest
import torch

from a2sb import prior
from a2sb.errors import A2SBError
from a2sb.metrics import lsd
from a2sb.model import A2SBModel
from a2sb.network import preset
from a2sb.prior import Prior, fill, gap_runs, similarity_source, widen
from a2sb.representation import HOP, istft, spec_to_representation, stft
from a2sb.restorer import Restorer
from a2sb.sbr import sbr_spectrum
from a2sb.training import config, datasets, pictures

SR = 44100



def restore_audio(x, rate, *, cutoff=None, gaps=None, model, **settings):
    """Restorer.restore_audio on (channels, samples) arrays, without the peak-safe gain."""
    y, rate = Restorer(model=model, peak_safety=False, **settings).restore_audio(x.T, rate, cutoff=cutoff, gaps=gaps)
    return y.T, rate


def test_prior_settings_round_trip_and_are_checked():
    p = Prior("dsp", 0.1, 3.0)
    assert Prior.from_dict(p.to_dict()) == p and p.informative and not Prior().informative
    assert Prior.from_dict(None) == Prior("noise", 0.5, 4.0)  # models without a "prior" entry: published
    with pytest.raises(A2SBError, match="prior kind"):
        Prior("sbr")
    with pytest.raises(A2SBError, match="unknown prior setting"):
        Prior.from_dict({"kind": "dsp", "level": 1})


def test_fill_keeps_the_known_region_and_adds_the_estimate_only_for_dsp():
    g = torch.Generator().manual_seed(0)
    known, noise, estimate = (torch.randn(2, 3, 8, 5, generator=g) for _ in range(3))
    mask = torch.zeros(2, 1, 8, 5)
    mask[..., 4:, :] = 1
    published = fill(known, mask, noise, Prior("noise", 0.5), estimate)
    ours = fill(known, mask, noise, Prior("dsp", 0.1), estimate)
    inside = mask.expand_as(known) > 0
    assert torch.equal(published[~inside], known[~inside]) and torch.equal(ours[~inside], known[~inside])
    assert torch.allclose(published[inside], 0.5 * noise[inside])
    assert torch.allclose(ours[inside], estimate[inside] + 0.1 * noise[inside])


def test_runs_and_widening():
    flags = torch.tensor([0, 1, 1, 0, 0, 0, 1, 0, 0, 0], dtype=torch.bool)
    assert gap_runs(flags) == [(1, 3), (6, 7)]
    assert widen(flags, 1).nonzero().flatten().tolist() == [0, 1, 2, 3, 5, 6, 7]


def test_similarity_source_finds_the_repeat_and_avoids_damaged_frames():
    g = torch.Generator().manual_seed(1)
    period = 40
    pattern = torch.rand(16, period, generator=g)
    picture = pattern.repeat(1, 6)  # 240 frames, the same 40 frames over and over
    damaged = torch.zeros(240, dtype=torch.bool)
    damaged[100:112] = True  # the gap [102, 110) and its neighbours
    source = similarity_source(picture, damaged, 102, 110)
    assert source is not None and (source - 102) % period == 0 and not damaged[source:source + 8].any()
    # with every exact repeat damaged, the best remaining candidate is not an exact repeat
    for k in range(6):
        damaged[102 + (k - 2) * period - 22:110 + (k - 2) * period + 22] = True
    other = similarity_source(picture, damaged, 102, 110)
    assert other is None or (other - 102) % period != 0
    # nothing to match against: a picture only as long as the gap
    assert similarity_source(picture[:, :8], torch.zeros(8, dtype=torch.bool), 0, 8) is None


def periodic(seconds, period_samples, seed=0):
    """A waveform that repeats exactly every `period_samples` (a whole number of hops)."""
    rng = np.random.default_rng(seed)
    one = rng.standard_normal(period_samples)
    spectrum = np.fft.rfft(one) / (1 + np.arange(period_samples // 2 + 1) / 40)  # a darker tilt
    spectrum[: 40 * period_samples // SR + 1] = 0  # nothing below 40 Hz: the picture has no DC row
    one = np.fft.irfft(spectrum, period_samples)
    reps = int(np.ceil(seconds * SR / period_samples))
    return (0.3 * one / np.abs(one).max() * np.ones((reps, 1))).reshape(-1)[: int(seconds * SR)].astype(np.float32)


def one_item(clean, kind, cutoff_row=1024, gap=(0, 0), context=None, valid=None):
    segment = clean if context is None else clean
    item = {"clean": torch.from_numpy(segment), "degraded": torch.from_numpy(segment.copy()),
            "cutoff_row": torch.tensor(cutoff_row), "gap": torch.tensor(list(gap)), "true_row": torch.tensor(1024),
            "kind": torch.tensor(kind)}
    if context is not None:
        item["context"] = torch.from_numpy(context)
        item["context_valid"] = torch.tensor(list(valid))
    return torch.utils.data.default_collate([item])


def test_build_batch_dsp_prior_is_band_replication_above_the_cutoff():
    clean = periodic(1.0, 40 * HOP)
    batch = one_item(clean, datasets.BWE, cutoff_row=186)
    x1 = pictures.build_batch(batch, prior=Prior("dsp", 0.0))["x1"]
    expected = spec_to_representation(sbr_spectrum(stft(torch.from_numpy(clean)), prior.cutoff_of_row(186)))
    assert torch.allclose(x1[0, :, 186:], expected[:, 186:], atol=1e-5)
    assert torch.equal(x1[0, :, :186], pictures.build_batch(batch)["x1"][0, :, :186])  # the known band as is


def test_build_batch_dsp_prior_copies_a_repeat_into_the_gap():
    period, pad = 40 * HOP, 60 * HOP
    whole = periodic(6.0, period)
    segment = whole[pad:pad + 256 * HOP]
    batch = one_item(segment, datasets.INPAINT, gap=(100, 140), context=whole[:len(segment) + 2 * pad],
                     valid=(0, len(segment) + 2 * pad))
    out = pictures.build_batch(batch, prior=Prior("dsp", 0.0))
    x0, x1 = out["x0"][0], out["x1"][0]
    # an exact repeat: the truth (compared as complex values: the phase of a near-zero bin is arbitrary)
    def complex_of(x):
        return x[0] ** 4 * torch.complex(x[1], x[2])

    truth = complex_of(x0[..., 100:140])
    assert (complex_of(x1[..., 100:140]) - truth).abs().max() < 1e-4 * truth.abs().max()
    noise_only = pictures.build_batch(batch, prior=Prior("noise", 0.0))["x1"][0]
    assert torch.count_nonzero(noise_only[..., 100:140]) == 0


def test_a_band_and_a_gap_are_estimated_in_restorations_order():
    """A BWE item with a gap: the gap is filled from the context first, then band replication runs over
    the whole crop, so x1 above the cutoff in the gap is band replication (as PictureEstimate gives it),
    never the context's own band above the cutoff (which restoration does not have)."""
    period, pad = 40 * HOP, 60 * HOP
    whole = periodic(6.0, period)
    segment = whole[pad:pad + 256 * HOP]
    context = whole[:len(segment) + 2 * pad].copy()
    spec = stft(torch.from_numpy(segment))
    truth = spec_to_representation(sbr_spectrum(spec, prior.cutoff_of_row(186)))
    batch = one_item(segment, datasets.BWE, cutoff_row=186, gap=(100, 140), context=context,
                     valid=(0, len(context)))
    estimate = prior.batch_estimate(spec[None], batch)[0]

    def complex_of(x):
        return x[0] ** 4 * torch.complex(x[1], x[2])

    scale = complex_of(truth).abs().max()
    # a periodic signal: the copied passage is the truth, so the whole estimate is band replication of it
    assert (complex_of(estimate) - complex_of(truth)).abs().max() < 1e-4 * scale
    own = complex_of(spec_to_representation(spec))[186:, 100:140]
    assert (complex_of(estimate)[186:, 100:140] - own).norm() > 0.5 * own.norm()  # not the context's band
    # a gap without a passage to copy (the context is silent around it): nothing estimated in the gap
    silent = one_item(segment, datasets.BWE, cutoff_row=186, gap=(100, 140),
                      context=np.zeros_like(context), valid=(0, len(context)))
    empty = prior.batch_estimate(spec[None], silent)[0]
    assert torch.count_nonzero(empty[..., 100:140]) == 0 and torch.count_nonzero(empty[:, 186:, :100]) > 0


def test_training_items_carry_context_for_the_dsp_prior(tmp_path):
    import soundfile as sf

    path = tmp_path / "a.flac"
    sf.write(path, periodic(20.0, 40 * HOP), SR)
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"split,file_path,duration\ntrain,{path},20.0\n")
    cfg = config.DataConfig.from_dict({"manifests": [str(manifest)], "prior": "dsp", "prior_context_s": 1.0,
                                     "p_bwe": 0, "p_inpaint": 1, "workers": 0, "normalise": "loudness",
                                     "loudness_jitter_db": 0})
    item = datasets.TrainingSet(cfg, seed=3)[0]
    pad = cfg.context_samples
    assert pad == round(SR / HOP) * HOP
    assert item["context"].shape[-1] == item["clean"].shape[-1] + 2 * pad
    lo, hi = item["context_valid"].tolist()
    middle = item["context"][pad:pad + item["clean"].shape[-1]]
    assert torch.equal(middle, item["clean"]) and 0 <= lo <= pad and hi <= item["context"].shape[-1]
    plain = config.DataConfig.from_dict({"manifests": [str(manifest)], "workers": 0})
    assert datasets.TrainingSet(plain, seed=3)[0]["context"].numel() == 0  # the noise prior reads no context


class ZeroNet(A2SBModel):
    """A network that predicts zero noise: the ODE sampler then returns x1 itself, so the restoration
    shows exactly the x1 the pipeline built."""

    def __init__(self, kind):
        super().__init__(preset("tiny"), prior=Prior(kind, 0.0, 4.0), default_sampler="ode", default_steps=3)

    def predict_noise(self, x, t, expert=None):
        return torch.zeros_like(x)


def test_restoration_x1_is_the_training_estimate():
    clean = periodic(6.0, 40 * HOP)
    stereo = np.stack([clean, 0.5 * clean])
    gap = (3.0, 3.4)
    damaged = stereo.copy()
    damaged[:, int(gap[0] * SR):int(gap[1] * SR)] = 0
    out, _ = restore_audio(damaged, SR, gaps=[gap], model=ZeroNet("dsp"), window=32, hop=16, level_match=False)
    a, b = int(gap[0] * SR), int(gap[1] * SR)
    err = out[:, a:b] - stereo[:, a:b]
    assert 10 * np.log10(np.sum(stereo[:, a:b] ** 2) / np.sum(err**2)) > 30  # the repeat, copied in
    silent, _ = restore_audio(damaged, SR, gaps=[gap], model=ZeroNet("noise"), window=32, hop=16,
                              level_match=False)
    assert np.abs(silent[:, a + 2048:b - 2048]).max() < 1e-6  # noise of std 0: nothing in the gap
    # bandwidth extension: the pipeline's estimate is the band replication of the sbr baseline
    from a2sb.baselines import bwe_sbr

    low = restore_audio(stereo, SR, cutoff=8000, model=ZeroNet("noise"), window=32, hop=16)[0]
    ours = restore_audio(low, SR, cutoff=4000, model=ZeroNet("dsp"), window=32, hop=16)[0]
    reference = bwe_sbr(low, SR, cutoff_hz=4000)
    assert lsd(reference, ours) < 0.1 and lsd(low, ours) > 1.0


def test_shared_noise_makes_the_channels_alike():
    clean = periodic(2.0, 40 * HOP)
    stereo = np.stack([clean, clean])
    model = ZeroNet("noise")
    model.prior = Prior("noise", 0.5)
    shared = restore_audio(stereo, SR, cutoff=4000, model=model, window=32, hop=16)[0]
    independent = restore_audio(stereo, SR, cutoff=4000, model=model, window=32, hop=16, stereo="independent")[0]
    assert np.array_equal(shared[0], shared[1]) and not np.allclose(independent[0], independent[1])
    # mid/side: the side of identical channels is silent, and so is its band replication: the channels
    # stay identical; opposite channels have a silent mid and stay opposite
    model = ZeroNet("dsp")
    midside = restore_audio(stereo, SR, cutoff=4000, model=model, window=32, hop=16, stereo="midside")[0]
    assert np.allclose(midside[0], midside[1], atol=1e-6)
    assert lsd(midside[0], restore_audio(clean, SR, cutoff=4000, model=model, window=32, hop=16)[0]) < 0.05
    opposite = restore_audio(np.stack([clean, -clean]), SR, cutoff=4000, model=model, window=32, hop=16,
                             stereo="midside")[0]
    assert np.allclose(opposite[0], -opposite[1], atol=1e-6)


def test_the_model_records_its_prior(tmp_path):
    from a2sb.model import load_model, save_model

    model = A2SBModel(preset("tiny"), prior=Prior("dsp", 0.2, 2.0))
    save_model(model, tmp_path / "m")
    assert load_model(str(tmp_path / "m")).prior == Prior("dsp", 0.2, 2.0)
    assert prior.PRIOR_KINDS == ("noise", "dsp")


def test_stereo_blend_keeps_each_channels_level_and_shares_the_mid():
    from a2sb.metrics import band_coherence
    from a2sb.prior import stereo_blend

    g = torch.Generator().manual_seed(2)
    left, right = (torch.randn(SR * 2, generator=g, dtype=torch.float64) for _ in range(2))
    spec = stft(torch.stack([left, 0.5 * right]))  # independent channels, 6 dB apart
    assert torch.equal(stereo_blend(spec, 0.0), spec) and torch.equal(stereo_blend(spec[:1], 1.0), spec[:1])
    coherence = []
    for mix in (0.0, 0.5, 1.0):
        out = stereo_blend(spec, mix)
        level = 10 * torch.log10(out.abs().square().mean((-1, -2)) / spec.abs().square().mean((-1, -2)))
        assert level.abs().max() < 0.3  # every channel keeps its level
        y = istft(out, 2 * SR).numpy()
        coherence.append(band_coherence(y, y, 1000.0)["coherence"])
    assert coherence[0] < 0.1 and 0.3 < coherence[1] < 0.8 and coherence[2] > 0.95


def test_band_level_reuses_the_dsp_estimate_and_keeps_band_replication(monkeypatch):
    from a2sb.baselines import bwe_sbr
    from a2sb.metrics import level_bias

    calls = []
    original = prior.PictureEstimate.__call__
    monkeypatch.setattr(prior.PictureEstimate, "__call__",
                        lambda self, a, b, spec=None: calls.append((a, b)) or original(self, a, b, spec))
    g = np.random.default_rng(5)
    low = bwe_sbr(0.05 * g.standard_normal((2, 2 * SR)).astype(np.float32), SR, cutoff_hz=8000)
    low = restore_audio(low, SR, cutoff=8000, model=ZeroNet("noise"), window=32, hop=16)[0]
    calls.clear()
    plain = restore_audio(low, SR, cutoff=4000, model=ZeroNet("dsp"), window=32, hop=16, band_level="off")[0]
    blocks = len(calls)
    calls.clear()
    matched = restore_audio(low, SR, cutoff=4000, model=ZeroNet("dsp"), window=32, hop=16, band_level="match")[0]
    assert len(calls) == blocks  # one estimate per block: the prior's is the level reference too
    # x1 is band replication itself (zero network), so matching it to band replication changes little
    assert np.abs(level_bias(plain, matched, 4000)).max() < 1.0


def test_both_entry_points_of_the_dsp_estimate_give_the_band_replication_exactly():
    """Training (`batch_estimate` via build_batch) and restoration (`PictureEstimate`) go through the one
    estimate; each equals band replication computed here from a2sb.sbr directly, to the bit."""
    from a2sb.sbr import sbr_slope

    clean = periodic(1.0, 40 * HOP)
    spec = stft(torch.from_numpy(clean))
    batch = one_item(clean, datasets.BWE, cutoff_row=186)
    cutoff = prior.cutoff_of_row(186)
    trained = prior.batch_estimate(spec[None], batch)[0]
    assert torch.equal(trained, spec_to_representation(sbr_spectrum(spec, cutoff)))
    x1 = pictures.build_batch(batch, prior=Prior("dsp", 0.0))["x1"][0]
    assert torch.equal(x1[:, 186:], trained[:, 186:])  # noise of std 0: x1 is the estimate in the band

    g = torch.Generator().manual_seed(2)
    stereo = stft(torch.randn(2, 300 * HOP, generator=g) * torch.tensor([[1.0], [0.4]]))
    frames = stereo.shape[-1]
    for mix in (0.0, 0.6):
        estimate = prior.PictureEstimate(lambda a, b: stereo[..., a:b], frames, 6000.0,
                                         torch.zeros(frames, dtype=torch.bool), Prior("dsp", stereo_mix=mix))
        # 301 frames: one block of SLOPE_BLOCK_FRAMES, the first, sets the envelope slope
        slope = sbr_slope(stereo[..., :256].abs().square().mean(-1).double(), 6000.0).float()
        window = stereo[..., 20:84]
        expected = spec_to_representation(prior.stereo_blend(sbr_spectrum(window, 6000.0, slope), mix))
        assert torch.equal(estimate(20, 84), expected)
    assert not torch.equal(estimate(20, 84), spec_to_representation(sbr_spectrum(window, 6000.0, slope)))
