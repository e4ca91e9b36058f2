"""`A2SBModel`: one or more expert networks, each serving an interval of diffusion time, with the
time embedding and the sampler; and loading/saving from our model folders, the bundled models and
NVIDIA's released Lightning checkpoints."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import torch
from torch import nn

from . import checkpoint
from .bridge import BridgeSchedule, predict_x0
from .errors import A2SBError
from .network import AttnUNetF, NetworkConfig, NoisePredictor, preset
from .prior import Prior
from .representation import HOP, N_FFT, SAMPLE_RATE
from .sampler import sample as run_sampler
from .sampler import time_grid

FORMAT_VERSION = 1
DEFAULT_MODEL = "default"
PUBLISHED_STEPS = 50


BAND_LEVELS = ("off", "match", "cap")  # the model's band level match: none, band replication's, at most it


def check_octave_table(table: dict | None, name: str = "band level offsets") -> dict | None:
    """Validate a table of dB per octave above some cutoffs (a2sb.levels.octave_table_db; a model's band
    level offsets or band gain): {"cutoffs_hz": [c, ...] increasing, "octaves_db": [[dB per octave above c,
    lowest first], ...] one non-empty list per cutoff}."""
    if table is None:
        return None
    try:
        cutoffs = [float(c) for c in table["cutoffs_hz"]]
        octaves = [[float(v) for v in row] for row in table["octaves_db"]]
    except (KeyError, TypeError, ValueError):
        raise A2SBError(f"{name} need cutoffs_hz and octaves_db lists of numbers, got {table!r}") from None
    if (not cutoffs or len(octaves) != len(cutoffs) or not all(octaves)
            or any(not a < b for a, b in zip(cutoffs, cutoffs[1:])) or cutoffs[0] <= 0
            or not all(math.isfinite(v) for row in octaves for v in row)):
        raise A2SBError(f"{name}: cutoffs_hz must increase from above 0, with one non-empty list of finite "
                        f"octaves_db per cutoff; got {table!r}")
    return {"cutoffs_hz": cutoffs, "octaves_db": octaves}


class A2SBModel(NoisePredictor):
    """The expert networks (a2sb.network.NoisePredictor) with the bridge schedule, the sampler and this
    model's defaults of restoration (steps, sampler, window, band level, how x1 is filled)."""

    def __init__(self, config: NetworkConfig, experts: Sequence[nn.Module] | None = None,
                 t_cutoffs: Sequence[float] = (), beta_max: float = 1.0, default_steps: int = PUBLISHED_STEPS,
                 provenance: dict | None = None, default_window: int = 256, default_hop: int = 128,
                 default_sampler: str = "sde", prior: Prior | None = None, default_band_level: str = "off",
                 band_level_offsets: dict | None = None, band_gain: dict | None = None):
        super().__init__(config, experts, t_cutoffs)
        self.schedule = BridgeSchedule(beta_max)
        # sampling defaults of this model (published: 50 steps, 256-frame windows with hop 128); a model
        # trained on shorter segments restores best with windows of its training length
        self.default_steps = int(default_steps)
        self.default_window, self.default_hop = int(default_window), int(default_hop)
        if default_sampler not in ("sde", "ode"):
            raise A2SBError(f"sampler must be 'sde' or 'ode', got '{default_sampler}'")
        self.default_sampler = default_sampler
        if default_band_level not in BAND_LEVELS:
            raise A2SBError(f"band level must be one of {', '.join(BAND_LEVELS)}, got '{default_band_level}'")
        self.default_band_level = default_band_level  # bandwidth extension's level correction (a2sb.levels)
        # measured error of band replication's level per octave, taken off the level reference (a2sb.levels)
        self.band_level_offsets = check_octave_table(band_level_offsets)
        # this model's own measured level deficit per octave above a cutoff: restoration raises the band by it
        # before the band level correction (experiments/fit_band_gain.py; a2sb.levels.match_band_level)
        self.band_gain = check_octave_table(band_gain, "band gain")
        self.prior = prior or Prior()  # how x1 was filled in training: restoration must do the same
        self.provenance = dict(provenance or {})

    def num_parameters(self) -> int:
        return sum(p.numel() for expert in self.experts for p in expert.state_dict().values())

    def predict_x0(self, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return predict_x0(self.schedule, xt, t, self.predict_noise(xt, t))

    @torch.no_grad()
    def sample(self, x1: torch.Tensor, mask: torch.Tensor, *, steps: int | None = None,
               t_steps: torch.Tensor | None = None, sampler: str | None = None, window: int | None = None,
               hop: int | None = None,
               seed: int | None = None, batch_size: int = 16, progress=None) -> torch.Tensor:
        """Restore the masked region of picture x1 (B×3×H×W); mask is 1 where content is generated."""
        sampler = sampler or self.default_sampler
        if sampler not in ("sde", "ode"):
            raise A2SBError(f"sampler must be 'sde' or 'ode', got '{sampler}'")
        if t_steps is None:
            t_steps = time_grid(steps or self.default_steps)
        window = window or self.default_window
        hop = hop or self.default_hop
        x1 = x1.to(self.device)
        mask = mask.to(self.device)

        def denoise(windows: torch.Tensor, t: float) -> torch.Tensor:
            return self.predict_noise(windows, t)

        return run_sampler(denoise, x1, mask, t_steps, schedule=self.schedule, sde=sampler == "sde",
                           window=window, hop=hop, seed=seed, batch_size=batch_size, progress=progress)

    def bundle_config(self) -> dict:
        return {
            "format_version": FORMAT_VERSION,
            "architecture": self.config.to_dict(),
            "t_cutoffs": self.t_cutoffs,
            "beta_max": self.schedule.beta_max,
            "stft": {"sample_rate": SAMPLE_RATE, "n_fft": N_FFT, "hop": HOP, "window": "hann-periodic",
                     "power": 0.25, "dc_dropped": True},
            "sampling": {"steps": self.default_steps, "window": self.default_window, "hop": self.default_hop,
                         "sampler": self.default_sampler, "band_level": self.default_band_level,
                         **({"band_level_offsets": self.band_level_offsets} if self.band_level_offsets else {}),
                         **({"band_gain": self.band_gain} if self.band_gain else {})},
            "prior": self.prior.to_dict(),
            "provenance": self.provenance,
        }


# ---------------------------------------------------------------------------------------------- loading

def network_config(config: dict | str | os.PathLike | NetworkConfig | None) -> NetworkConfig:
    """A network configuration from a dict, a YAML/JSON file (the published `vf_model.init_args` or a
    whole published YAML holding it), a preset name, or None (the paper configuration)."""
    if config is None:
        return preset("paper")
    if isinstance(config, NetworkConfig):
        return config
    if isinstance(config, str) and not os.path.exists(config) and config in _preset_names():
        return preset(config)
    if isinstance(config, (str, os.PathLike)):
        path = Path(config)
        if not path.exists():
            raise A2SBError(f"no such config file: {path}")
        import yaml  # JSON is a subset of YAML

        try:
            config = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            raise A2SBError(f"cannot parse config {path}: {str(err).splitlines()[0]}") from None
    args = _find_init_args(config)
    if args is None:
        raise A2SBError("config has no AttnUNetF arguments (expected e.g. hidden_channels)")
    try:
        return NetworkConfig.from_dict(args)
    except (TypeError, ValueError) as err:
        raise A2SBError(f"invalid network config: {err}") from None


def _preset_names():
    from .network import PRESETS

    return PRESETS


def _find_init_args(node):
    """The AttnUNetF arguments inside a config tree: a mapping with `hidden_channels`, found directly
    or under `vf_model: {init_args: ...}` at any depth."""
    if isinstance(node, dict):
        if "hidden_channels" in node:
            return {k: v for k, v in node.items() if k != "class_path"}
        for key in ("vf_model", "init_args", "model"):
            if key in node:
                found = _find_init_args(node[key])
                if found is not None:
                    return found
        for value in node.values():
            found = _find_init_args(value)
            if found is not None:
                return found
    return None


def _expected_shapes(cfg: NetworkConfig) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        net = AttnUNetF(cfg)
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def _build(cfg: NetworkConfig, states: list[dict], sources: list[str], **kwargs) -> A2SBModel:
    expected = _expected_shapes(cfg)
    experts = []
    for state, source in zip(states, sources):
        checkpoint.check_state_dict(expected, state, source)
        net = AttnUNetF(cfg)
        net.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
        experts.append(net.eval())
    return A2SBModel(cfg, experts, **kwargs)


def bundled_models() -> list[str]:
    root = resources.files("a2sb") / "models"
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "config.json").is_file())


def load_model(source: str | os.PathLike | Sequence[str | os.PathLike] = DEFAULT_MODEL, *,
               t_cutoffs: Sequence[float] | None = None, config=None, device: str | torch.device = "cpu"
               ) -> A2SBModel:
    """Load a bundled model by name, one of our model folders (or its .safetensors file), or one or more
    of NVIDIA's released Lightning `.ckpt` files (experts in t order; default cutoffs: evenly spaced,
    i.e. [0.5] for the published two-split pair). Never executes pickled code."""
    sources = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    if not sources:
        raise A2SBError("no model source given")
    if all(str(s).endswith(".ckpt") for s in sources):
        model = _load_released(sources, t_cutoffs, config)
    elif len(sources) == 1:
        model = _load_bundle(sources[0], config)
    else:
        raise A2SBError("several sources must all be released .ckpt files")
    return model.to(device).eval()


def _load_released(paths, t_cutoffs, config) -> A2SBModel:
    cfg = network_config(config)
    if t_cutoffs is None:
        t_cutoffs = [i / len(paths) for i in range(1, len(paths))]
    states, multipliers = [], None
    for path in paths:
        state, mult = checkpoint.split_network_state(checkpoint.read_lightning_state_dict(path))
        states.append(state)
        multipliers = mult if multipliers is None else multipliers
    provenance = {"source": "released Lightning checkpoints", "files": [os.path.basename(str(p)) for p in paths]}
    model = _build(cfg, states, [str(p) for p in paths], t_cutoffs=t_cutoffs, provenance=provenance)
    if multipliers is not None:
        if multipliers.numel() != model.multipliers.numel():
            raise A2SBError(f"t_to_emb.multipliers has {multipliers.numel()} values, expected "
                            f"{model.multipliers.numel()}")
        model.multipliers.copy_(multipliers.reshape(model.multipliers.shape).float())
    return model


def _load_bundle(source, config) -> A2SBModel:
    path = Path(source)
    if not path.exists() and str(source) in bundled_models():
        path = Path(str(resources.files("a2sb") / "models" / str(source)))
    if not path.exists():
        names = ", ".join(bundled_models()) or "none"
        raise A2SBError(f"no model '{source}': not a file or folder, nor a bundled model (bundled: {names})")
    states, meta = checkpoint.load_bundle(path)
    cfg = network_config(config) if config is not None else network_config(meta.get("architecture"))
    sampling = meta.get("sampling", {})
    model = _build(cfg, states, [str(path)] * len(states), t_cutoffs=meta.get("t_cutoffs", []),
                   beta_max=meta.get("beta_max", 1.0), default_steps=sampling.get("steps", PUBLISHED_STEPS),
                   default_window=sampling.get("window", 256), default_hop=sampling.get("hop", 128),
                   default_sampler=sampling.get("sampler", "sde"), provenance=meta.get("provenance", {}),
                   default_band_level=sampling.get("band_level", "off"),
                   band_level_offsets=sampling.get("band_level_offsets"), band_gain=sampling.get("band_gain"),
                   prior=Prior.from_dict(meta.get("prior")))
    if "time_multipliers" in meta:
        model.multipliers.copy_(torch.tensor(meta["time_multipliers"]).reshape(model.multipliers.shape))
    return model


def save_model(model: A2SBModel, folder: str | os.PathLike, *, half: bool = False) -> None:
    """Write our model folder: model.safetensors (experts as expert{i}.<key>) + config.json.
    `half` stores the weights in float16 (they are loaded back as float32)."""
    states = []
    for expert in model.experts:
        state = {k: v.detach().cpu().contiguous() for k, v in expert.state_dict().items()}
        if half:
            state = {k: v.half() if v.is_floating_point() and not k.endswith("pos_emb.freqs") else v
                     for k, v in state.items()}
        states.append(state)
    meta = model.bundle_config()
    meta["time_multipliers"] = model.multipliers.flatten().tolist()
    checkpoint.save_bundle(folder, states, meta)


def describe(model: A2SBModel) -> str:
    return json.dumps({"parameters": model.num_parameters(), "experts": len(model.experts),
                       "t_cutoffs": model.t_cutoffs, "architecture": model.config.to_dict()}, indent=2)
