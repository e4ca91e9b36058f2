import json

import pytest
import torch

from a2sb.model import A2SBModel
from a2sb.network import AttnUNetF, NetworkConfig
from a2sb.sampler import PositionalNoise, padded_width, sample, time_grid, window_starts, wrap_pad


@pytest.fixture(scope="module")
def official_model(official):
    meta = official.metadata()
    cfg = NetworkConfig.from_dict(json.loads(meta["config"]))
    experts = []
    for e in range(2):
        net = AttnUNetF(cfg)
        prefix = f"expert{e}.vf_model."
        net.load_state_dict({k[len(prefix):]: official.get_tensor(k) for k in official.keys() if k.startswith(prefix)})
        experts.append(net.eval())
    return A2SBModel(cfg, experts, t_cutoffs=json.loads(meta["t_cutoffs"]), beta_max=float(meta["beta_max"]))


def test_two_expert_ode_sampler_matches_published(official, official_model):
    meta = official.metadata()
    assert meta["sampler"] == "ot-ode"
    x1, mask, t_steps = (official.get_tensor(f"sample.{k}") for k in ("x1", "mask", "t_steps"))
    first = []

    def record(i):
        first.append(i)

    out = official_model.sample(x1, mask, t_steps=t_steps, sampler="ode", window=int(meta["win_length"]),
                                hop=int(meta["hop_length"]), progress=record)
    assert (out - official.get_tensor("sample.final")).abs().max().item() <= 1e-4
    assert first == list(range(len(t_steps) - 1))
    # the known region passes through bit-exactly
    known = mask == 0
    assert torch.equal(out[known], x1[known])


def test_first_clean_estimate_matches_published(official, official_model):
    meta = official.metadata()
    x1, mask, t_steps = (official.get_tensor(f"sample.{k}") for k in ("x1", "mask", "t_steps"))
    out = official_model.sample(x1, mask, t_steps=t_steps[:2], sampler="ode", window=int(meta["win_length"]),
                                hop=int(meta["hop_length"]))
    assert (out - official.get_tensor("sample.first_pred_x0")).abs().max().item() <= 1e-4


class Recorder:
    """A fake network: returns a fixed function of its input and records the t of every call."""

    def __init__(self):
        self.calls = []

    def __call__(self, windows, t):
        self.calls.append((t, windows.shape[0]))
        return 0.3 * torch.tanh(windows) + t


def test_grid_expert_split_and_call_count():
    grid = time_grid(50)
    assert grid[0] == 1.0 and grid[-1].item() == pytest.approx(0.05)
    assert grid[1].item() == pytest.approx(0.98061222, abs=1e-7)
    model = A2SBModel(NetworkConfig(n_updown_levels=1, hidden_channels=[64, 64], attention_levels=[],
                                    n_attn_heads=1, emb_channels=8, band_embedding_dim=0), t_cutoffs=[0.5])
    experts = [model.expert_index(float(t)) for t in grid[:-1]]
    assert experts.count(1) == 26 and experts.count(0) == 23
    assert [model.expert_index(t) for t in (0.0, 0.4999, 0.5, 1.0)] == [0, 0, 1, 1]


@pytest.mark.parametrize("width", [10, 64, 100, 300])
def test_padding_and_windows(width):
    window, hop = 64, 32
    padded = padded_width(width, window, hop)
    starts = window_starts(padded, window, hop)
    assert padded >= max(width, window) and (padded - window) % hop == 0
    assert starts[-1] + window == padded
    x = torch.arange(width, dtype=torch.float32)[None, None, None].expand(1, 3, 4, width)
    xp = wrap_pad(x, padded)
    assert xp.shape[-1] == padded
    assert torch.equal(xp[..., width:], x[..., torch.arange(padded - width) % width])


def test_sampler_is_seeded_chunking_invariant_and_keeps_known_region():
    g = torch.Generator().manual_seed(0)
    x1 = torch.randn(2, 3, 16, 150, generator=g)
    mask = torch.zeros(2, 1, 16, 150)
    mask[:, :, 8:] = 1
    kwargs = dict(window=64, hop=32, seed=7)
    a = sample(Recorder(), x1, mask, time_grid(6), batch_size=1, **kwargs)
    rec = Recorder()
    b = sample(rec, x1, mask, time_grid(6), batch_size=16, **kwargs)
    c = sample(Recorder(), x1, mask, time_grid(6), batch_size=16, window=64, hop=32, seed=8)
    assert a.shape == x1.shape
    assert torch.allclose(a, b, atol=1e-6)
    assert not torch.allclose(a, c)
    known = mask.expand_as(x1) == 0
    assert torch.equal(a[known], x1[known])
    # 5 steps × 2 items × 4 windows (width 150 padded to 160: starts 0, 32, 64, 96)
    assert sum(n for _, n in rec.calls) == 5 * 2 * 4 and max(n for _, n in rec.calls) <= 16


def test_positional_noise_does_not_depend_on_the_request():
    noise = PositionalNoise(3, rows=8)
    whole = noise.frames(2, 0, [0, 1], 0, 400)
    part = noise.frames(2, 0, [1], 130, 290)
    assert torch.equal(whole[1:, :, :, 130:290], part)
    assert not torch.equal(noise.frames(3, 0, [0], 0, 10), whole[:1, :, :, :10])
    assert abs(whole.std().item() - 1) < 0.02


def test_sde_sampler_statistics_without_model():
    """With a network that predicts the exact noise of a known x0, every step's clean estimate is x0,
    so the SDE sampler must return x0 in the hole (a closed-form check of the posterior algebra)."""
    from a2sb.bridge import BridgeSchedule

    s = BridgeSchedule()
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(1, 3, 8, 64, generator=g)
    x1 = torch.randn(1, 3, 8, 64, generator=g)
    mask = torch.ones(1, 1, 8, 64)

    def oracle(windows, t):
        return (windows - x0[..., : windows.shape[-1]]) / s.std_fwd(t).item()

    for sampler in ("sde", "ode"):
        out = sample(oracle, x1, mask, time_grid(8), sde=sampler == "sde", window=64, hop=32, seed=0)
        assert torch.allclose(out, x0, atol=1e-5)
