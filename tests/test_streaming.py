"""The bounded-memory wavefront sampler reproduces the full-array reference sampler."""

import numpy as np
import pytest
import torch

from a2sb.audio import ArrayWave
from a2sb.model import A2SBModel
from a2sb.network import preset
from a2sb.picture import OverlapAdd, WaveformPicture
from a2sb.representation import istft, stft, to_representation
from a2sb.sampler import count_windows, sample, sample_streaming, stream_sample, time_grid


def toy_denoise(x, t):
    """Cheap stand-in network: depends on content, neighbours in time and t (scalar or per window)."""
    t = t.reshape(-1, 1, 1, 1).to(x) if torch.is_tensor(t) else t
    return torch.tanh(0.7 * x + 0.3 * torch.roll(x, 1, -1) - 0.2 * x.mean(-1, keepdim=True) + t)


def picture(items, width, rows=16, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x1 = torch.randn(items, 3, rows, width, generator=gen)
    mask = torch.zeros(1, 1, rows, width)
    mask[..., width // 3: width // 3 + 5] = 1  # a gap
    mask[..., rows // 2:, :] = 1  # and a band
    return x1, mask


@pytest.mark.parametrize("width", [20, 64, 100, 333])  # < window, = window, not a hop multiple, many
@pytest.mark.parametrize("sde", [True, False])
@pytest.mark.parametrize("items", [1, 2])
def test_equals_full_sampler_toy_network(width, sde, items):
    x1, mask = picture(items, width)
    t = time_grid(5)
    ref = sample(toy_denoise, x1, mask, t, sde=sde, window=64, hop=32, seed=7, batch_size=5)
    for group, batch in [(None, 16), (1, 1), (3, 7)]:
        out = sample_streaming(toy_denoise, x1, mask, t, sde=sde, window=64, hop=32, seed=7, batch_size=batch,
                               group=group)
        assert (out - ref).abs().max() <= 1e-5


@pytest.mark.parametrize("window,hop", [(64, 64), (48, 32), (64, 16)])
def test_equals_full_sampler_other_window_hop(window, hop):
    x1, mask = picture(2, 150)
    t = time_grid(4)
    ref = sample(toy_denoise, x1, mask, t, window=window, hop=hop, seed=1)
    out = sample_streaming(toy_denoise, x1, mask, t, window=window, hop=hop, seed=1)
    assert (out - ref).abs().max() <= 1e-5


def tiny_model(t_cutoffs):
    torch.manual_seed(0)
    model = A2SBModel(preset("tiny"), t_cutoffs=t_cutoffs).eval()
    with torch.no_grad():  # the last convs start at zero: perturb so the output depends on everything
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return model


@pytest.mark.parametrize("t_cutoffs,sde,items,width,group", [
    ([], True, 2, 50, None),
    ([0.5], False, 1, 96, None),
    # one window per step and group: batches mix windows of different steps, t and experts
    ([0.5], True, 1, 160, 1),
])
def test_equals_full_sampler_real_network(t_cutoffs, sde, items, width, group):
    model = tiny_model(t_cutoffs)
    x1, mask = picture(items, width, rows=32, seed=3)
    t = time_grid(4)  # 3 evaluations at t = 1, 0.68, 0.37: both experts are used when split at 0.5
    with torch.inference_mode():
        ref = sample(lambda x, tt: model.predict_noise(x, tt), x1, mask, t, sde=sde, window=32, hop=16, seed=5)
        out = sample_streaming(lambda x, tt: model.predict_noise(x, tt), x1, mask, t, sde=sde, window=32, hop=16,
                               seed=5, batch_size=8, group=group)
    assert ref[mask.expand_as(ref) > 0].abs().max() > 0.1  # something was generated
    assert (out - ref).abs().max() <= 1e-5


def test_fast_mode_is_exact_and_skips_untouched_windows():
    width = 400
    x1 = torch.randn(2, 3, 16, width)
    mask = torch.zeros(1, 1, 16, width)
    mask[..., 150:160] = 1  # one short gap
    t = time_grid(4)
    calls = []

    def counting(x, tt):
        calls.append(x.shape[0])
        return toy_denoise(x, tt)

    ref = sample(toy_denoise, x1, mask, t, window=64, hop=32, seed=2)
    fetched = []

    def source(a, b):
        fetched.append((a, b))
        return x1[..., a:b], mask[..., a:b]

    masked = np.zeros(width, bool)
    masked[150:160] = True
    out = x1.clone()
    for a, b, x0 in stream_sample(counting, source, width, 2, t, window=64, hop=32, seed=2, masked_frames=masked):
        if x0 is not None:
            out[..., a:b] = x0
    assert (out - ref).abs().max() <= 1e-5
    assert torch.equal(out[..., :96], x1[..., :96]) and torch.equal(out[..., 224:], x1[..., 224:])
    assert sum(calls) == count_windows(width, 64, 32, masked) * 2 * 3 == 2 * 2 * 3  # 2 windows touch the gap
    assert max(b for _, b in fetched) <= 224 and min(a for a, _ in fetched) >= 96  # nothing else transformed


def test_gap_longer_than_a_window_is_fully_generated():
    width = 300
    x1 = torch.randn(1, 3, 16, width)
    mask = torch.zeros(1, 1, 16, width)
    mask[..., 40:250] = 1  # 210 frames, > 3 windows of 64
    t = time_grid(3)
    ref = sample(toy_denoise, x1, mask, t, window=64, hop=32, seed=4)
    out = sample_streaming(toy_denoise, x1, mask, t, window=64, hop=32, seed=4, skip_unmasked=True)
    assert (out - ref).abs().max() <= 1e-5
    assert (out[..., 40:250] != x1[..., 40:250]).all(dim=(0, 1, 2)).all()


def test_memory_band_does_not_grow_with_length():
    """How far the input read runs ahead of the finished output (what is held in memory) is the same for
    a long and a 4x longer picture."""
    def lead(width):
        x1 = torch.randn(1, 3, 8, width)
        mask = torch.ones(1, 1, 8, width)
        state = {"read": 0, "lead": 0}

        def source(a, b):
            state["read"] = max(state["read"], b)
            return x1[..., a:b], mask[..., a:b]

        for _, b, _ in stream_sample(toy_denoise, source, width, 1, time_grid(6), window=64, hop=32, seed=0):
            state["lead"] = max(state["lead"], state["read"] - b)
        return state["lead"]

    assert lead(2000) == lead(8000) < 2000


@pytest.mark.parametrize("length", [2048, 5000, 70000, 70144])
def test_waveform_picture_and_overlap_add_match_whole_transforms(length):
    x = np.random.default_rng(length).standard_normal((2, length)).astype(np.float32)
    pic = WaveformPicture(ArrayWave(x).read, length)
    extended = torch.from_numpy(np.pad(x, ((0, 0), (0, pic.extended - length)), mode="reflect"))
    whole = to_representation(extended)
    assert whole.shape[-1] == pic.frames
    pieces = torch.cat([pic(a, min(a + 37, pic.frames)) for a in range(0, pic.frames, 37)], dim=-1)
    assert (pieces - whole).abs().max() <= 1e-6
    dc = torch.cat([pic.dc_row(a, min(a + 37, pic.frames)) for a in range(0, pic.frames, 37)], dim=-1)
    assert dc.shape == (2, 1, pic.frames)  # the DC bin alone, as the whole transform has it
    assert (dc - stft(extended)[..., :1, :]).abs().max() <= 1e-4 * stft(extended)[..., :1, :].abs().max()

    spec = stft(extended)
    ola, parts = OverlapAdd(2), []
    for a in range(0, pic.frames, 29):
        parts.append(ola.push(spec[..., a:a + 29]))
    parts.append(ola.finish())
    position = 0
    for start, samples in parts:
        assert start == position
        position += samples.shape[-1]
    wave = torch.cat([s for _, s in parts], dim=-1)
    assert wave.shape[-1] == pic.extended
    assert (wave - istft(spec)).abs().max() <= 1e-5
    assert (wave[:, :length] - torch.from_numpy(x)).abs().max() <= 1e-5


def test_overlap_add_from_a_later_frame():
    x = torch.randn(1, 40000)
    spec = stft(x)
    ola = OverlapAdd(1, first_frame=20)
    start, samples = ola.push(spec[..., 20:50])
    assert start == 20 * 512 + 512
    assert (samples - istft(spec)[:, start:start + samples.shape[-1]]).abs().max() <= 1e-5
