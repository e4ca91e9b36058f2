import json

import pytest
import torch

from a2sb.network import (
    PRESETS,
    AttnUNetF,
    NetworkConfig,
    PixelRotary,
    ResBlock,
    band_embedding,
    count_parameters,
    preset,
    time_embedding,
    time_multipliers,
)


def perturbed(net: torch.nn.Module, scale=0.05, seed=0) -> torch.nn.Module:
    """Random weights everywhere (the zero-initialised output convs would hide most of the network)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if not name.endswith("pos_emb.freqs"):
                p.add_(torch.randn(p.shape, generator=g) * scale)
    return net


def test_paper_state_dict_matches_published_layout(reference_dir):
    with torch.device("meta"):
        net = AttnUNetF(preset("paper"))
    rows = [line.rstrip("\n").split("\t") for line in open(reference_dir / "paper_state_dict.tsv")]
    mine = [(k, str(tuple(v.shape)), str(v.dtype)) for k, v in net.state_dict().items()]
    assert len(rows) == len(mine) == 327
    assert [tuple(r) for r in rows] == mine
    assert net.num_parameters() == 565_544_851
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    assert trainable == 565_544_851 - 144  # the rotary frequencies are fixed


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_parameter_formula_matches_every_preset(name):
    cfg = preset(name)
    with torch.device("meta"):
        net = AttnUNetF(cfg)
    assert net.num_parameters() == count_parameters(cfg)


def test_forward_matches_published_vectors(official):
    cfg = NetworkConfig.from_dict(json.loads(official.metadata()["config"]))
    net = AttnUNetF(cfg).eval()
    prefix = "expert0.vf_model."
    net.load_state_dict({k[len(prefix):]: official.get_tensor(k) for k in official.keys() if k.startswith(prefix)})
    x, t, t_emb, y = (official.get_tensor(f"forward.{k}") for k in ("x", "t", "t_emb", "y"))
    assert torch.equal(time_embedding(t, time_multipliers(128)), t_emb)
    with torch.no_grad():
        out = net(x, t_emb)
    assert (out - y).abs().max().item() <= 1e-4


def test_separable_conditioning_equals_published_broadcast_conv():
    """The published block runs a 1x1 conv over SiLU([band(row); time]) broadcast to B×E×H×W."""
    torch.manual_seed(0)
    block = perturbed(ResBlock(64, 144, 16, 0.0)).eval()
    x = torch.randn(3, 64, 32, 8)
    emb = time_embedding(torch.tensor([0.1, 0.5, 0.9]), time_multipliers(128))
    from a2sb.network import Conditioning

    out = block(x, Conditioning(emb, 16))
    b, _, h, w = x.shape
    cond_map = torch.cat([band_embedding(h, 16)[None, :, :, None].expand(b, 16, h, w),
                          emb[:, :, None, None].expand(b, 128, h, w)], dim=1)
    g = block.emb_layers(cond_map)
    scale, shift = g.chunk(2, dim=1)
    hh = block.in_layers(x)
    ref = x + block.out_rest(block.out_norm(hh) * (1 + scale) + shift)
    assert (out - ref).abs().max() < 1e-5


def test_band_embedding_values():
    emb = band_embedding(8, 16)
    assert emb.shape == (16, 8)
    assert torch.equal(emb[:, 0], torch.tensor([1.0] * 8 + [0.0] * 8))
    # row 3 of 8, f = 2: phase 2*2*3*3.14/(3*8)
    assert emb[1, 3].item() == pytest.approx(torch.cos(torch.tensor(12 * 3.14 / 24)).item(), abs=1e-7)


def test_rotary_matches_complex_rotation():
    """Adjacent pairs (u0, u1) rotate like the complex number u0 + i·u1 by the pair's angle."""
    rot = PixelRotary()
    h, w, d = 4, 6, 80
    x = torch.randn(2, 3, h * w, d, dtype=torch.float64)
    cos, sin = rot.angles(h, w, "cpu", torch.float64)
    out = PixelRotary.rotate(x, cos, sin)
    py, px = torch.linspace(-1, 1, h, dtype=torch.float64), torch.linspace(-1, 1, w, dtype=torch.float64)
    freqs = rot.freqs.double()  # the stored float32 values
    for y in range(h):
        for xi in range(w):
            angle = torch.cat([py[y] * freqs, px[xi] * freqs])  # 32 pair angles
            z = torch.complex(x[..., y * w + xi, 0:64:2], x[..., y * w + xi, 1:64:2]) * torch.exp(1j * angle)
            got = out[..., y * w + xi, :]
            assert torch.allclose(got[..., 0:64:2], z.real, atol=1e-5)
            assert torch.allclose(got[..., 1:64:2], z.imag, atol=1e-5)
            assert torch.equal(got[..., 64:], x[..., y * w + xi, 64:])


def test_batch_composition_does_not_change_outputs():
    torch.manual_seed(0)
    net = perturbed(AttnUNetF(preset("tiny"))).eval()
    x = torch.randn(3, 3, 64, 32)
    emb = time_embedding(torch.tensor([0.2, 0.6, 0.9]), net_mult := time_multipliers(32))
    with torch.no_grad():
        full = net(x, emb)
        single = net(x[1:2], time_embedding(torch.tensor([0.6]), net_mult))
    assert (full[1:2] - single).abs().max() < 1e-5


def test_gradients_reach_every_trainable_parameter():
    torch.manual_seed(0)
    net = perturbed(AttnUNetF(preset("tiny")))
    x = torch.randn(2, 3, 64, 32)
    emb = time_embedding(torch.rand(2), time_multipliers(32))
    net(x, emb).square().mean().backward()
    for name, p in net.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
        else:
            assert name.endswith("pos_emb.freqs") and p.grad is None


def test_config_validation_and_published_argument_names():
    cfg = NetworkConfig.from_dict({"n_updown_levels": 2, "hidden_channels": 64, "attention_levels": [1],
                                   "n_attn_heads": 1, "rotary_dims": 16})
    assert cfg.hidden_channels == [64, 64, 64]
    with pytest.raises(ValueError, match="unknown"):
        NetworkConfig.from_dict({"hidden_width": 3})
    with pytest.raises(ValueError, match="divisible by 32"):
        NetworkConfig(n_updown_levels=1, hidden_channels=[48, 64], attention_levels=[])
    with pytest.raises(ValueError, match="head size"):
        NetworkConfig(n_updown_levels=1, hidden_channels=[64, 64], attention_levels=[0], n_attn_heads=2)
    with pytest.raises(ValueError, match="divisible by"):
        AttnUNetF(preset("tiny"))(torch.zeros(1, 3, 40, 32), torch.zeros(1, 32))
