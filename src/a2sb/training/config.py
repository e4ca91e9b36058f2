"""The typed configuration of a training run: `TrainConfig` (sections model, data, bridge, optim,
trainer, validation) read from YAML with `section.key=value` overrides. Every section rejects keys it
does not know and checks its values, so a typo stops the run before any data is read.
Defaults are the published settings (docs/method.md §Training) unless a comment says "ours".
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..codecs import CODECS
from ..errors import A2SBError, reject_unknown_keys
from ..masks import FILL_NOISE
from ..network import PRESETS, NetworkConfig, preset
from ..prior import PRIOR_KINDS, Prior
from ..representation import HOP, SAMPLE_RATE, num_frames
from .state import atomic_write_text

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
PRECISIONS = ("auto", "bf16", "fp32")


# ------------------------------------------------------------------------------------------ data section
def _default_kinds() -> list[str]:
    return ["butter", "cheby1", "ellip", "fir", "resample", "brickwall"]


@dataclass
class DataConfig:
    """Data settings of a training run. Defaults are the published pretraining settings (docs/method.md §Training)
    except `p_waveform_lowpass` (0 in the published code: its known band is always the clean signal).

    manifests: [{"path": CSV, "weight": w}, ...]; a manifest is picked with probability ∝ weight, then a
        file in it with probability ∝ duration.
    normalise: "published" = per crop, divide by the peak if it exceeds 1, then map an all-positive
        signal x to 2x − 1 (docs/method.md §Training); "loudness" = scale the crop to `loudness_target_db` dBFS RMS
        plus a uniform random gain of ±`loudness_jitter_db` dB (none for validation), then scale down
        if the peak exceeds 1 (so loud, peaky crops end a little under the target). Silent crops are
        left as they are.
    channel: "random" = one channel of a multichannel file, drawn per item; "mean" = the downmix.
    p_codec (ours, issue 25): weight of codec items beside p_bwe, p_extension, p_inpaint: the crop goes
        through a real lossy encoder (one of `codecs`, at a bitrate drawn log-uniformly from
        `codec_kbps`), the band above the cutoff the detector finds on the decode is generated, and so
        are the codec holes (`a2sb.holes`) below it. 0 (the default) leaves every other item as it was.
    p_bwe_gap (ours): share of the BWE items that also get an inpainting gap (drawn as an inpaint item's),
        so that a band and dropouts restored together (one picture, `a2sb.output.FillGuard`) are seen in
        training. 0 (the default) leaves every item as it was.
    """

    manifests: list = field(default_factory=list)
    segment_samples: int = 130560
    sample_rate: int = SAMPLE_RATE
    p_bwe: float = 0.5
    p_extension: float = 0.0
    p_inpaint: float = 0.5
    p_codec: float = 0.0
    p_bwe_gap: float = 0.0
    codecs: list = field(default_factory=lambda: ["mp3", "vorbis", "opus"])
    codec_kbps: list = field(default_factory=lambda: [48.0, 192.0])
    bwe_min_hz: float = 2000.0
    bwe_max_hz: float = 16000.0
    inpaint_min_frac: float = 0.03378
    inpaint_max_frac: float = 0.5404
    inpaint_random_position: bool = True
    fill_noise: float = FILL_NOISE
    prior: str = "noise"  # how x1's region to generate is filled: noise (published) | dsp (a2sb.prior)
    prior_context_s: float = 4.0  # dsp prior: audio read on each side of a crop for the similarity search
    p_waveform_lowpass: float = 0.5
    lowpass_kinds: list = field(default_factory=_default_kinds)
    lowpass_orders: list = field(default_factory=lambda: [4, 8, 12])
    apply_sr_loss_mask: bool = True
    min_true_sr: int = 32000
    normalise: str = "published"
    loudness_target_db: float = -20.0
    loudness_jitter_db: float = 6.0
    channel: str = "random"
    workers: int = 4
    epoch_length: int = 10_000_000  # virtual epoch: items are drawn, so any length works

    def __post_init__(self) -> None:
        self.manifests = [_manifest_entry(m) for m in (self.manifests or [])]
        self.lowpass_kinds = [str(k) for k in self.lowpass_kinds]
        self.lowpass_orders = [int(o) for o in self.lowpass_orders]
        self.codecs = [str(c) for c in self.codecs]
        try:
            self.codec_kbps = [float(k) for k in self.codec_kbps]
        except (TypeError, ValueError):
            raise A2SBError(f"data config: codec_kbps must be two numbers, got {self.codec_kbps!r}") from None
        self.validate()

    def validate(self) -> None:
        def bad(msg: str):
            raise A2SBError(f"data config: {msg}")

        if self.sample_rate != SAMPLE_RATE:
            bad(f"sample_rate must be {SAMPLE_RATE} (the representation is fixed to it)")
        if self.segment_samples < HOP:
            bad(f"segment_samples must be at least {HOP}")
        probs = (self.p_bwe, self.p_extension, self.p_inpaint, self.p_codec)
        if min(probs) < 0 or sum(probs) <= 0:
            bad("p_bwe, p_extension, p_inpaint, p_codec must be >= 0 with a positive sum")
        if not 0 <= self.p_bwe_gap <= 1:
            bad("p_bwe_gap must be in [0, 1]")
        unknown = [c for c in self.codecs if c not in CODECS]
        if unknown:
            bad(f"unknown codec(s) {', '.join(unknown)}; choose from {', '.join(CODECS)}")
        if self.p_codec > 0 and not self.codecs:
            bad("p_codec > 0 needs codecs")
        if len(self.codec_kbps) != 2 or not 0 < self.codec_kbps[0] <= self.codec_kbps[1]:
            bad("codec_kbps must be [low, high] with 0 < low <= high")
        if not 0 < self.bwe_min_hz <= self.bwe_max_hz:
            bad("need 0 < bwe_min_hz <= bwe_max_hz")
        if not 0 <= self.inpaint_min_frac <= self.inpaint_max_frac <= 1:
            bad("need 0 <= inpaint_min_frac <= inpaint_max_frac <= 1")
        if not 0 <= self.p_waveform_lowpass <= 1:
            bad("p_waveform_lowpass must be in [0, 1]")
        if self.p_waveform_lowpass > 0 and (not self.lowpass_kinds or not self.lowpass_orders):
            bad("p_waveform_lowpass > 0 needs lowpass_kinds and lowpass_orders")
        if any(o < 1 for o in self.lowpass_orders):
            bad("lowpass_orders must be >= 1")
        if self.normalise not in ("published", "loudness"):
            bad(f"normalise must be 'published' or 'loudness', got {self.normalise!r}")
        if self.channel not in ("random", "mean"):
            bad(f"channel must be 'random' or 'mean', got {self.channel!r}")
        if self.prior not in PRIOR_KINDS:
            bad(f"prior must be one of {', '.join(PRIOR_KINDS)}, got {self.prior!r}")
        if self.fill_noise < 0 or self.prior_context_s < 0:
            bad("fill_noise and prior_context_s must be >= 0")
        if self.workers < 0 or self.epoch_length < 1:
            bad("workers must be >= 0 and epoch_length >= 1")

    @classmethod
    def from_dict(cls, d: dict | None) -> DataConfig:
        return _section_from_dict(cls, d, "data")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def frames(self) -> int:
        return num_frames(self.segment_samples)

    def x1_prior(self) -> Prior:
        return Prior(self.prior, self.fill_noise, self.prior_context_s)

    @property
    def context_samples(self) -> int:
        """Audio on each side of a crop that items carry for the dsp prior (whole hops; 0 = none)."""
        if self.prior != "dsp":
            return 0
        return int(round(self.prior_context_s * SAMPLE_RATE / HOP)) * HOP


def _manifest_entry(m) -> dict:
    if isinstance(m, (str, os.PathLike)):
        return {"path": str(m), "weight": 1.0}
    if not isinstance(m, dict) or "path" not in m:
        raise A2SBError(f"data config: a manifest is a path or {{path, weight}}, got {m!r}")
    extra = set(m) - {"path", "weight"}
    if extra:
        raise A2SBError(f"data config: unknown manifest setting(s) {', '.join(sorted(extra))}")
    weight = float(m.get("weight", 1.0))
    if weight < 0:
        raise A2SBError(f"data config: manifest weight must be >= 0, got {weight}")
    return {"path": str(m["path"]), "weight": weight}


def load_data_config(path: str | os.PathLike) -> DataConfig:
    """A DataConfig from a YAML file (the mapping itself, or under a top-level `data:` key)."""
    import yaml

    try:
        with open(path) as f:
            d = yaml.safe_load(f) or {}
    except OSError as err:
        raise A2SBError(f"cannot read data config {path}: {err.strerror}") from None
    if isinstance(d, dict) and isinstance(d.get("data"), dict):
        d = d["data"]
    return DataConfig.from_dict(d)



# ------------------------------------------------------------------------------------------ other sections

def _coerce(value: Any, annotation: str, where: str) -> Any:
    """Check/convert a YAML value against a field annotation (YAML 1.1 reads `8e-5` as a string)."""
    optional = annotation.endswith("| None")
    base = annotation.removesuffix("| None").strip()
    if value is None:
        if optional:
            return None
        raise A2SBError(f"{where} must not be empty")
    try:
        if base == "float":
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if base == "int":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(float(value)) if isinstance(value, str) else int(value)
        if base == "bool":
            if not isinstance(value, bool):
                raise ValueError
            return value
        if base == "str":
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise ValueError
            return str(value)
        if base == "list[float]":
            if not isinstance(value, (list, tuple)):
                raise ValueError
            return [_coerce(v, "float", where) for v in value]
    except (TypeError, ValueError):
        raise A2SBError(f"{where}: expected {base}, got {value!r}") from None
    return value


def _section_from_dict(cls, d: Any, name: str):
    if d is None:
        d = {}
    if not isinstance(d, dict):
        raise A2SBError(f"config section '{name}' must be a mapping, got {type(d).__name__}")
    known = {f.name: f for f in fields(cls)}
    reject_unknown_keys(d, known, f"unknown key(s) in config section '{name}':", list_known=True)
    return cls(**{k: _coerce(v, str(known[k].type), f"{name}.{k}") for k, v in d.items()})


def _section_to_dict(obj) -> dict:
    return {f.name: (list(v) if isinstance(v := getattr(obj, f.name), tuple) else v) for f in fields(obj)}


@dataclass
class ModelSection:
    """A network preset plus overrides of any `NetworkConfig` field (published argument names)."""

    preset: str = "paper"
    overrides: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Any) -> ModelSection:
        d = dict(d or {})
        name = str(d.pop("preset", "paper"))
        if name not in PRESETS:
            raise A2SBError(f"model.preset: unknown preset '{name}' (choose from {', '.join(PRESETS)})")
        known = ["preset", *sorted(f.name for f in fields(NetworkConfig))]
        reject_unknown_keys(d, known, "unknown key(s) in config section 'model':", list_known=True)
        section = cls(name, d)
        section.network()  # validate now, not after the data has been indexed
        return section

    def to_dict(self) -> dict:
        return {"preset": self.preset, **self.overrides}

    def network(self) -> NetworkConfig:
        try:
            return preset(self.preset, **self.overrides)
        except (TypeError, ValueError) as err:
            raise A2SBError(f"invalid model config: {err}") from None


@dataclass
class BridgeSection:
    beta_max: float = 1.0
    t_min: float = 0.0  # t ~ U[t_min, t_max) per sample; an expert is fine-tuned on its own range
    t_max: float = 1.0
    ot_ode: bool = False  # drop the noise of the bridge marginal (published configs: false)
    # ours: > 0 weighs the magnitude channel's loss as an error in log magnitude above this floor
    # (a2sb.bridge.magnitude_weight); 0 = the published unweighted loss
    magnitude_floor: float = 0.0
    # ours: what sets that weight: "target" (the clean magnitude; biased towards quiet outputs where the
    # level is uncertain) or "prediction" (the network's own clean estimate, detached: the same emphasis
    # on quiet regions, but the loss's optimum stays the conditional mean)
    magnitude_weight_from: str = "target"


@dataclass
class OptimSection:
    lr: float = 8e-5
    weight_decay: float = 1e-8  # decoupled (AdamW-style)
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    grad_clip: float = 0.5  # global L2 norm; 0 disables clipping (the norm is still logged)
    grad_accum: int = 1
    ema_decay: float = 0.0  # 0 = no EMA of the weights (published)
    ema_warmup: bool = True  # decay min(ema_decay, (1 + step) / (10 + step)): forget the initial weights
    # Optional cosine decay of the learning rate from `lr` at step lr_decay_start to `lr_final` at
    # lr_decay_start + lr_decay_steps, constant after (None = constant lr, the published setting).
    # A function of the step only, so a resumed run follows the same schedule.
    lr_decay_start: int | None = None
    lr_decay_steps: int = 1000
    lr_final: float = 0.0


@dataclass
class TrainerSection:
    run_dir: str = "runs/a2sb"  # --run-dir overrides
    batch_size: int = 10  # per process (GPU)
    max_steps: int | None = None  # total optimiser steps; None = until stopped
    precision: str = "auto"  # auto (bf16 on CUDA, fp32 on CPU: bf16 measured 20x slower here) | bf16 | fp32
    device: str = "auto"  # auto | cpu | cuda
    seed: int = 0
    log_every: int = 50
    checkpoint_every: int = 1000
    keep_checkpoints: bool = True  # also keep checkpoints/step_XXXXXXXX.pt, not only last.pt
    max_bad_steps: int = 20  # stop after this many non-finite losses in a row
    init_from: str | None = None  # run folder, training checkpoint, model folder or released .ckpt
    init_ema: bool = False  # take the EMA weights of init_from (training runs/checkpoints only)
    init_optimizer: bool = False  # also take its optimiser state (the published fine-tuning did)
    compile: bool = False  # torch.compile the network
    tensorboard: bool = True


@dataclass
class ValidationSection:
    every: int = 1000  # steps between validation losses; 0 = never
    t_values: list[float] = field(default_factory=lambda: [0.01, 0.25, 0.5, 0.75, 0.99])
    batch_size: int = 8
    max_items: int = 256  # validation segments (published val_max_samples)
    max_files: int = 100  # per manifest
    noise_seed: int = 1234
    sample_every: int = 5000  # steps between restorations of validation clips; 0 = never
    sample_clips: int = 4
    sample_steps: int = 10
    sampler: str = "sde"
    phase_fix: bool = True
    log_audio: bool = True
    use_ema: bool = True  # validate the EMA weights when there are some


SECTIONS = {"bridge": BridgeSection, "optim": OptimSection, "trainer": TrainerSection,
            "validation": ValidationSection}


@dataclass
class TrainConfig:
    model: ModelSection = field(default_factory=ModelSection)
    data: DataConfig = field(default_factory=DataConfig)
    bridge: BridgeSection = field(default_factory=BridgeSection)
    optim: OptimSection = field(default_factory=OptimSection)
    trainer: TrainerSection = field(default_factory=TrainerSection)
    validation: ValidationSection = field(default_factory=ValidationSection)

    @classmethod
    def from_dict(cls, d: Any) -> TrainConfig:
        if d is None:
            d = {}
        if not isinstance(d, dict):
            raise A2SBError("a training config must be a mapping of sections")
        reject_unknown_keys(d, [f.name for f in fields(cls)], "unknown config section(s):", list_known=True)
        try:
            data = DataConfig.from_dict(d.get("data") or {})
        except A2SBError:
            raise
        except (TypeError, ValueError, KeyError) as err:
            raise A2SBError(f"invalid data config: {err}") from None
        config = cls(model=ModelSection.from_dict(d.get("model")), data=data,
                     **{name: _section_from_dict(sec, d.get(name), name) for name, sec in SECTIONS.items()})
        config.validate()
        return config

    def to_dict(self) -> dict:
        out = {"model": self.model.to_dict(), "data": self.data.to_dict()}
        out.update({name: _section_to_dict(getattr(self, name)) for name in SECTIONS})
        return out

    def validate(self) -> None:
        b, o, tr, v = self.bridge, self.optim, self.trainer, self.validation
        if b.magnitude_floor < 0:
            raise A2SBError(f"bridge.magnitude_floor must be >= 0, got {b.magnitude_floor}")
        if b.magnitude_weight_from not in ("target", "prediction"):
            raise A2SBError(f"bridge.magnitude_weight_from must be target or prediction, got "
                            f"'{b.magnitude_weight_from}'")
        if not 0 <= b.t_min < b.t_max <= 1:
            raise A2SBError(f"bridge: need 0 <= t_min < t_max <= 1, got [{b.t_min}, {b.t_max})")
        if tr.precision not in PRECISIONS:
            raise A2SBError(f"trainer.precision must be one of {', '.join(PRECISIONS)}, got '{tr.precision}'")
        if tr.device not in ("auto", "cpu", "cuda"):
            raise A2SBError(f"trainer.device must be auto, cpu or cuda, got '{tr.device}'")
        if v.sampler not in ("sde", "ode"):
            raise A2SBError(f"validation.sampler must be sde or ode, got '{v.sampler}'")
        for name, value in (("trainer.batch_size", tr.batch_size), ("optim.grad_accum", o.grad_accum),
                            ("trainer.log_every", tr.log_every), ("trainer.max_bad_steps", tr.max_bad_steps),
                            ("validation.batch_size", v.batch_size)):
            if value < 1:
                raise A2SBError(f"{name} must be at least 1, got {value}")
        if len(o.betas) != 2:
            raise A2SBError(f"optim.betas needs two values, got {o.betas}")
        if not 0 <= o.ema_decay < 1:
            raise A2SBError(f"optim.ema_decay must be in [0, 1), got {o.ema_decay}")
        if v.sample_steps < 2:
            raise A2SBError("validation.sample_steps must be at least 2")
        if o.lr_decay_start is not None and (o.lr_decay_start < 0 or o.lr_decay_steps < 1 or o.lr_final < 0):
            raise A2SBError("optim: lr_decay_start must be >= 0, lr_decay_steps >= 1 and lr_final >= 0")
        # The UNet halves the picture n times: the frame count must be a multiple of 2^n. Rather than
        # cropping frames silently, the segment length is required to fit (W = 1 + L // 512).
        levels = self.model.network().n_updown_levels
        length = int(self.data.segment_samples)
        frames = 1 + length // 512
        if frames % 2**levels:
            fit = (frames // 2**levels) * 2**levels or 2**levels
            raise A2SBError(f"data.segment_samples={length} gives {frames} frames; the network needs a "
                            f"multiple of {2**levels}: use segment_samples={512 * (fit - 1)} ({fit} frames) "
                            f"or {512 * (fit + 2**levels - 1)} ({fit + 2**levels} frames)")


def load_config(source: str | os.PathLike | dict, overrides: list[str] | None = None) -> TrainConfig:
    """A TrainConfig from a YAML file (or the name of a bundled config, e.g. `tiny`) or a dict, with
    `section.key=value` overrides (values parsed as YAML)."""
    import yaml

    if isinstance(source, dict):
        raw = json.loads(json.dumps(source))
    else:
        path = Path(source)
        if not path.exists() and (CONFIG_DIR / f"{source}.yaml").exists():
            path = CONFIG_DIR / f"{source}.yaml"
        if not path.is_file():
            raise A2SBError(f"no such config file: {source}")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise A2SBError(f"cannot parse config {path}: {str(err).splitlines()[0]}") from None
    for item in overrides or []:
        key, sep, text = item.partition("=")
        parts = key.strip().split(".")
        if not sep or len(parts) < 2 or not all(parts):
            raise A2SBError(f"--set expects section.key=value, got '{item}'")
        node = raw
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise A2SBError(f"--set {key}: '{part}' is not a section")
        node[parts[-1]] = yaml.safe_load(text)
    return TrainConfig.from_dict(raw)


def save_config(config: TrainConfig, path: Path) -> None:
    import yaml

    atomic_write_text(path, yaml.safe_dump(config.to_dict(), sort_keys=False))


