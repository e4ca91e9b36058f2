"""The A2SB network: `AttnUNetF`, a UNet with 2-D rotary attention and a frequency-band embedding
(docs/method.md §Network), with state-dict names identical to the published ones.

The conditioning map of the published network (band embedding of the row, concatenated with the time
embedding, fed through SiLU and a 1x1 conv in every ResBlock) is separable: it is computed here as a
per-row term plus a per-sample term, broadcast-added, which gives the same numbers without ever
building a B×144×H×W map.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import asdict, dataclass, field, fields

import torch
import torch.nn.functional as F
from torch import nn

from .errors import A2SBError

ROTARY_DIM = 32  # per axis; hard-wired in the published network (rotary_dims is ignored)
ROTARY_FEATURES = 2 * ROTARY_DIM
GROUPS = 32


@dataclass
class NetworkConfig:
    """`AttnUNetF` arguments, with the published names so the published YAML can be used as is."""

    n_updown_levels: int = 5
    in_channels: int = 3
    hidden_channels: list[int] = field(default_factory=lambda: [128, 256, 512, 768, 1024, 2048])
    out_channels: int = 3
    emb_channels: int = 128
    band_embedding_dim: int = 16
    n_attn_heads: int = 8
    attention_levels: list[int] = field(default_factory=lambda: [3, 4])
    use_attn_input_norm: bool = True
    num_res_blocks: int | list[int] = 2  # ours: a list gives a count per encoder level (decoder mirrored)
    rotary_dims: int | None = None  # accepted and ignored, as in the published network
    dropout: float = 0.1
    norm_groups: int = 32  # ours: GroupNorm groups (published: 32)

    def __post_init__(self):
        if isinstance(self.hidden_channels, int):
            self.hidden_channels = [self.hidden_channels] * (self.n_updown_levels + 1)
        self.hidden_channels = [int(c) for c in self.hidden_channels]
        self.attention_levels = [int(a) for a in self.attention_levels]
        if isinstance(self.num_res_blocks, (list, tuple)):
            self.num_res_blocks = [int(r) for r in self.num_res_blocks]
        self.validate()

    def res_blocks(self, level: int) -> int:
        """ResBlocks per encoder level `level` (decoder level l mirrors encoder level n − 1 − l)."""
        r = self.num_res_blocks
        return r[level] if isinstance(r, list) else r

    def validate(self) -> None:
        n = self.n_updown_levels
        if len(self.hidden_channels) != n + 1:
            raise ValueError(f"hidden_channels needs {n + 1} widths for n_updown_levels={n}")
        if isinstance(self.num_res_blocks, list) and len(self.num_res_blocks) != n:
            raise ValueError(f"num_res_blocks as a list needs {n} counts (one per level)")
        for c in self.hidden_channels:
            if c % self.norm_groups:
                raise ValueError(f"every width must be divisible by {self.norm_groups} (GroupNorm groups), got {c}")
        for a in self.attention_levels:
            if not 0 <= a < n:
                raise ValueError(f"attention level {a} outside 0..{n - 1}")
        for c in [self.hidden_channels[a] for a in self.attention_levels] + [self.hidden_channels[n]]:
            if c % self.n_attn_heads or c // self.n_attn_heads < ROTARY_FEATURES:
                raise ValueError(f"attention width {c} with {self.n_attn_heads} heads needs head size >= 64")
        if self.band_embedding_dim % 2:
            raise ValueError("band_embedding_dim must be even")
        if self.emb_channels % 2:
            raise ValueError("emb_channels must be even")

    @property
    def cond_channels(self) -> int:
        return self.emb_channels + self.band_embedding_dim

    @classmethod
    def from_dict(cls, d: dict) -> NetworkConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown network argument(s): {', '.join(unknown)}")
        return cls(**d)

    def to_dict(self) -> dict:
        return asdict(self)


# Presets. `paper` is the published 565M-parameter configuration; the others are ours.
PRESETS: dict[str, dict] = {
    "paper": {},
    # Used by unit tests: tiny, still exercises every kind of block.
    "tiny": dict(hidden_channels=[32, 32, 32, 64, 64, 128], n_attn_heads=1, attention_levels=[4],
                 emb_channels=32, band_embedding_dim=8),
    # The published conformance vectors' configuration (see shared/reference).
    "conformance": dict(hidden_channels=[32, 32, 32, 32, 128, 128], n_attn_heads=2, attention_levels=[4],
                        band_embedding_dim=16, emb_channels=128),
    # CPU-sized members of the family (ours): thin at full resolution (no full-resolution ResBlocks,
    # 16 channels), capacity at the coarse levels where it is cheap. Candidates for the bundled model;
    # see MODEL_CARD.md for how they compare.
    "cpu-small": dict(hidden_channels=[16, 16, 32, 64, 128, 256], num_res_blocks=[0, 1, 1, 1, 1], norm_groups=16,
                      n_attn_heads=2, attention_levels=[4], emb_channels=128, band_embedding_dim=16),
    "cpu-base": dict(hidden_channels=[16, 16, 32, 64, 192, 384], num_res_blocks=[0, 1, 1, 2, 2], norm_groups=16,
                     n_attn_heads=3, attention_levels=[4], emb_channels=128, band_embedding_dim=16),
    # cpu-small's widths with no ResBlock above 1/4 resolution and two at 1/16 and 1/32: cheaper per window.
    "cpu-thin": dict(hidden_channels=[16, 16, 32, 64, 128, 256], num_res_blocks=[0, 0, 1, 2, 2], norm_groups=16,
                     n_attn_heads=2, attention_levels=[4], emb_channels=128, band_embedding_dim=16),
    "cpu-fullres": dict(hidden_channels=[16, 16, 32, 64, 128, 256], num_res_blocks=[1, 1, 1, 1, 1], norm_groups=16,
                        n_attn_heads=2, attention_levels=[4], emb_channels=128, band_embedding_dim=16),
}


def preset(name: str, **overrides) -> NetworkConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown preset '{name}' (choose from {', '.join(PRESETS)})")
    return NetworkConfig(**{**PRESETS[name], **overrides})


def group_norm(x: torch.Tensor, norm: nn.GroupNorm) -> torch.Tensor:
    """GroupNorm evaluated in float32 and cast back (as published)."""
    return F.group_norm(x.float(), norm.num_groups, norm.weight, norm.bias, norm.eps).to(x.dtype)


class GroupNorm32(nn.GroupNorm):
    def __init__(self, channels: int, groups: int = GROUPS):
        super().__init__(groups, channels, eps=1e-5)

    def forward(self, x):
        return group_norm(x, self)


def band_embedding(height: int, dim: int, device=None) -> torch.Tensor:
    """(dim, height) sinusoids of the row index (F25, F26): cos block then sin block, with the literal
    constant 3.14 and the height of the current level."""
    f = torch.arange(1, dim // 2 + 1, device=device)[:, None]
    c = torch.arange(height, device=device)[None, :]
    phase = (2 * f * c).float() * torch.tensor(3.14, dtype=torch.float32) / torch.tensor(
        float(3 * height), dtype=torch.float32)
    return torch.cat([torch.cos(phase), torch.sin(phase)], dim=0)


def time_multipliers(emb_channels: int = 128) -> torch.Tensor:
    """(1, emb/2) frequencies of the time embedding (F23), stored as `t_to_emb.multipliers`."""
    return torch.linspace(0.5, 16, emb_channels // 2, dtype=torch.float32)[None]


def time_embedding(t: torch.Tensor, multipliers: torch.Tensor) -> torch.Tensor:
    """(B,) diffusion times -> (B, emb) [sin(t·mu), cos(t·mu)] (F24), no 2·pi."""
    phase = t.reshape(-1, 1).float() * multipliers.reshape(1, -1)
    return torch.cat([torch.sin(phase), torch.cos(phase)], dim=1)


class Conditioning:
    """The conditioning of one forward pass: SiLU of the band embedding per level height (cached) and
    SiLU of the time embedding per sample. ResBlocks split their 1x1 weights to match."""

    def __init__(self, time_emb: torch.Tensor, band_dim: int):
        self.time_silu = F.silu(time_emb)
        self.band_dim = band_dim
        self._band: dict[int, torch.Tensor] = {}

    def band_silu(self, height: int) -> torch.Tensor:
        if height not in self._band:
            emb = band_embedding(height, self.band_dim, self.time_silu.device).to(self.time_silu.dtype)
            self._band[height] = F.silu(emb)
        return self._band[height]


class ResBlock(nn.Module):
    def __init__(self, channels: int, cond_channels: int, band_dim: int, dropout: float, groups: int = GROUPS):
        super().__init__()
        self.band_dim = band_dim
        self.in_layers = nn.Sequential(GroupNorm32(channels, groups), nn.SiLU(),
                                       nn.Conv2d(channels, channels, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Conv2d(cond_channels, 2 * channels, 1))
        self.out_norm = GroupNorm32(channels, groups)
        self.out_rest = nn.Sequential(nn.SiLU(), nn.Dropout(dropout), nn.Conv2d(channels, channels, 3, padding=1))
        nn.init.zeros_(self.out_rest[2].weight)
        nn.init.zeros_(self.out_rest[2].bias)

    def modulation(self, cond: Conditioning, height: int, dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """scale and shift, each (B, C, H, 1): row term (band) + sample term (time, bias)."""
        conv = self.emb_layers[1]
        weight = conv.weight[:, :, 0, 0].to(dtype)
        g = F.linear(cond.time_silu.to(dtype), weight[:, self.band_dim:], conv.bias.to(dtype))[:, :, None, None]
        if self.band_dim:
            g = g + (weight[:, : self.band_dim] @ cond.band_silu(height).to(dtype))[None, :, :, None]
        return g.chunk(2, dim=1)

    def forward(self, x: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        h = self.in_layers(x)
        scale, shift = self.modulation(cond, x.shape[2], h.dtype)
        h = self.out_norm(h) * (1 + scale) + shift
        return x + self.out_rest(h)


class PixelRotary(nn.Module):
    """2-D axial rotary embedding on the first 64 features of each head: 32 from the row position,
    32 from the frame position, positions linspace(-1, 1) over the current map, adjacent-pair
    rotation. `freqs` is kept as a frozen parameter so checkpoints carry it (docs/method.md §Network)."""

    def __init__(self):
        super().__init__()
        self.freqs = nn.Parameter(torch.linspace(1.0, ROTARY_DIM, ROTARY_DIM // 2) * math.pi, requires_grad=False)

    def angles(self, height: int, width: int, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin of the 32 pair angles per position, (H*W, 32)."""
        freqs = self.freqs.float()
        ay = torch.linspace(-1, 1, height, device=device)[:, None] * freqs  # (H, 16)
        ax = torch.linspace(-1, 1, width, device=device)[:, None] * freqs  # (W, 16)
        ang = torch.cat([ay[:, None, :].expand(height, width, -1), ax[None, :, :].expand(height, width, -1)], -1)
        ang = ang.reshape(height * width, ROTARY_DIM)
        return torch.cos(ang).to(dtype), torch.sin(ang).to(dtype)

    @staticmethod
    def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        rot, rest = x[..., :ROTARY_FEATURES], x[..., ROTARY_FEATURES:]
        even, odd = rot[..., 0::2], rot[..., 1::2]
        rotated = torch.stack([even * cos - odd * sin, odd * cos + even * sin], dim=-1).flatten(-2)
        return torch.cat([rotated, rest], dim=-1)


class RotaryAttention(nn.Module):
    """Multi-head self-attention over all positions of the map. As published: GroupNorm at the input,
    no residual connection and no output projection."""

    def __init__(self, channels: int, heads: int, input_norm: bool = True, groups: int = GROUPS):
        super().__init__()
        self.heads = heads
        self.gnorm = GroupNorm32(channels, groups) if input_norm else nn.Identity()
        self.q_proj = nn.Conv2d(channels, channels, 1)
        self.k_proj = nn.Conv2d(channels, channels, 1)
        self.v_proj = nn.Conv2d(channels, channels, 1)
        self.pos_emb = PixelRotary()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        d = c // self.heads
        xn = self.gnorm(x)
        # one fused matmul for q, k and v (separate weights are kept for checkpoint compatibility)
        weight = torch.cat([self.q_proj.weight, self.k_proj.weight, self.v_proj.weight])[:, :, 0, 0]
        bias = torch.cat([self.q_proj.bias, self.k_proj.bias, self.v_proj.bias])
        tokens = xn.flatten(2).transpose(1, 2)  # (B, HW, C)
        qkv = F.linear(tokens, weight.to(tokens.dtype), bias.to(tokens.dtype))
        qkv = qkv.view(b, h * w, 3, self.heads, d).permute(2, 0, 3, 1, 4)  # (3, B, heads, HW, d)
        q, k, v = qkv[0], qkv[1], qkv[2]
        autocast_device = x.device.type if x.device.type in ("cuda", "cpu", "mps", "xpu") else "cpu"
        with torch.autocast(device_type=autocast_device, enabled=False):
            cos, sin = self.pos_emb.angles(h, w, x.device, q.dtype)
            q = PixelRotary.rotate(q, cos, sin)
            k = PixelRotary.rotate(k, cos, sin)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, heads, HW, d)
        return out.permute(0, 1, 3, 2).reshape(b, c, h, w)


class Downsample(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.op = nn.Conv2d(c_in, c_out, 3, stride=2, padding=1)

    def forward(self, x):
        return self.op(x)


class Upsample(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def _res(width: int, cfg: NetworkConfig) -> ResBlock:
    return ResBlock(width, cfg.cond_channels, cfg.band_embedding_dim, cfg.dropout, cfg.norm_groups)


def _attn(width: int, cfg: NetworkConfig) -> RotaryAttention:
    return RotaryAttention(width, cfg.n_attn_heads, cfg.use_attn_input_norm, cfg.norm_groups)


def _level_blocks(width: int, cfg: NetworkConfig, count: int, attention: bool) -> nn.ModuleList:
    blocks = []
    for _ in range(count):
        blocks.append(_res(width, cfg))
        if attention:
            blocks.append(_attn(width, cfg))
    return nn.ModuleList(blocks)


def _run_blocks(blocks, h: torch.Tensor, cond: Conditioning) -> torch.Tensor:
    for block in blocks:
        h = block(h, cond) if isinstance(block, ResBlock) else block(h)
    return h


class AttnUNetF(nn.Module):
    """The published UNet. forward(x, time_emb): x (B, 3, H, W) with H, W divisible by 2^levels,
    time_emb (B, emb_channels) -> predicted scaled noise (B, 3, H, W)."""

    def __init__(self, config: NetworkConfig | None = None, **kwargs):
        super().__init__()
        cfg = config or NetworkConfig(**kwargs)
        self.config = cfg
        n, widths, attn = cfg.n_updown_levels, cfg.hidden_channels, set(cfg.attention_levels)
        # Registration order fixes the state-dict key order of the published checkpoints.
        self.enc_blocks = nn.ModuleList([_level_blocks(widths[l], cfg, cfg.res_blocks(l), l in attn)
                                         for l in range(n)])
        self.ds_layers = nn.ModuleList([Downsample(widths[l], widths[l + 1]) for l in range(n)])
        self.us_layers = nn.ModuleList([Upsample(widths[n - l], widths[n - l - 1]) for l in range(n)])
        mirror = [n - 1 - l for l in range(n)]  # decoder level l mirrors encoder level n - 1 - l
        self.dec_blocks = nn.ModuleList([_level_blocks(widths[n - l], cfg, cfg.res_blocks(m), m in attn)
                                         for l, m in enumerate(mirror)])
        self.input_projection = nn.Conv2d(cfg.in_channels, widths[0], 3, padding=1)
        self.middle_block = nn.ModuleList([_res(widths[n], cfg), _attn(widths[n], cfg), _res(widths[n], cfg)])
        self.output_projection = nn.Sequential(GroupNorm32(widths[0], cfg.norm_groups), nn.SiLU(),
                                               nn.Conv2d(widths[0], cfg.out_channels, 3, padding=1))

    def forward(self, x: torch.Tensor, time_emb: torch.Tensor) -> torch.Tensor:
        n = self.config.n_updown_levels
        if x.shape[2] % 2**n or x.shape[3] % 2**n:
            raise ValueError(f"input height and width must be divisible by {2 ** n}, got {tuple(x.shape[2:])}")
        cond = Conditioning(time_emb, self.config.band_embedding_dim)
        h = self.input_projection(x)
        skips = []
        for l in range(n):
            h = _run_blocks(self.enc_blocks[l], h, cond)
            h = self.ds_layers[l](h)
            skips.append(h)
        h = _run_blocks(self.middle_block, h, cond)
        for l in range(n):
            h = h + skips[n - 1 - l]  # additive skips, taken after each downsample
            h = _run_blocks(self.dec_blocks[l], h, cond)
            h = self.us_layers[l](h)
        return self.output_projection(h)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.state_dict().values())


def count_parameters(cfg: NetworkConfig) -> int:
    """Closed-form parameter count of a configuration (each block's count summed), for checks without
    building it."""
    e, n, c, r = cfg.cond_channels, cfg.n_updown_levels, cfg.hidden_channels, cfg.res_blocks
    attn = set(cfg.attention_levels)

    def res(ch):
        return 18 * ch * ch + 2 * e * ch + 8 * ch

    def att(ch):
        return 3 * ch * ch + (5 * ch if cfg.use_attn_input_norm else 3 * ch) + 16

    total = 9 * cfg.in_channels * c[0] + c[0] + 2 * c[0] + 9 * c[0] * cfg.out_channels + cfg.out_channels
    for l in range(n):
        total += r(l) * res(c[l]) + r(l) * (l in attn) * att(c[l]) + 9 * c[l] * c[l + 1] + c[l + 1]
        total += 9 * c[n - l] * c[n - l - 1] + c[n - l - 1]
        total += r(n - 1 - l) * res(c[n - l]) + r(n - 1 - l) * ((n - 1 - l) in attn) * att(c[n - l])
    return total + 2 * res(c[n]) + att(c[n])


class NoisePredictor(nn.Module):
    """The networks with their time embedding: `predict_noise(x_t, t)` -> the predicted scaled noise
    (docs/method.md §Network). The one wrapper that training's loss and the sampler both call.

    It holds one network per expert, each serving an interval of diffusion time split at `t_cutoffs`
    (k cutoffs -> k + 1 experts; expert i serves the t with exactly i cutoffs <= t); a training run
    trains one. The experts' state dicts hold exactly the network's (published) keys; the embedding's
    frequencies are one buffer, `multipliers`, shared by all experts."""

    def __init__(self, config: NetworkConfig, experts=None, t_cutoffs=()):
        super().__init__()
        self.config = config
        self.t_cutoffs = [float(c) for c in t_cutoffs]
        if sorted(self.t_cutoffs) != self.t_cutoffs or any(not 0 < c < 1 for c in self.t_cutoffs):
            raise A2SBError(f"t_cutoffs must be increasing values inside (0, 1), got {self.t_cutoffs}")
        if experts is None:
            experts = [AttnUNetF(config) for _ in range(len(self.t_cutoffs) + 1)]
        if len(experts) != len(self.t_cutoffs) + 1:
            raise A2SBError(f"{len(experts)} expert(s) need {len(experts) - 1} t-cutoff(s), got {len(self.t_cutoffs)}")
        # channels-last convolution weights: the same numbers, faster passes on a CPU (benchmarks/README.md);
        # saving makes the tensors contiguous again
        self.experts = nn.ModuleList(experts).to(memory_format=torch.channels_last)
        self.register_buffer("multipliers", time_multipliers(config.emb_channels))

    @property
    def device(self) -> torch.device:
        return self.multipliers.device

    def expert_index(self, t: float) -> int:
        return bisect.bisect_right(self.t_cutoffs, float(t))

    def predict_noise(self, x: torch.Tensor, t: torch.Tensor | float, expert: int | None = None) -> torch.Tensor:
        """Network output for pictures x (B×3×H×W) at times t (B,) or a scalar; expert chosen by t."""
        t = torch.as_tensor(t, dtype=torch.float32, device=x.device).reshape(-1).expand(x.shape[0])
        emb = time_embedding(t, self.multipliers).to(x.dtype)
        if expert is None and len(self.experts) == 1:
            expert = 0  # no look at t: no device-to-host copy per training step
        if expert is not None:
            return self.experts[expert](x, emb)
        index = torch.tensor([self.expert_index(v) for v in t.tolist()], device=x.device)
        if bool((index == index[0]).all()):
            return self.experts[int(index[0])](x, emb)
        out = torch.empty_like(x[:, : self.config.out_channels])
        for i in index.unique().tolist():
            sel = index == i
            out[sel] = self.experts[i](x[sel], emb[sel])
        return out

    def forward(self, x: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
        return self.predict_noise(x, t)
