"""Bridge training (SPEC section 3): `a2sb train CONFIG.yaml` and `a2sb export RUN_DIR... -o MODEL_DIR`.

One script for every setting: a single process on the CPU or one GPU, and DDP over several GPUs or
nodes when started by torchrun (or srun with one task per GPU); the launcher's environment decides.

Reproducibility: every random number of optimiser step s (data degradation noise, t, bridge noise,
dropout) comes from generators seeded by (seed, s, rank, micro-batch), and the data is addressed by
index, so a resumed run repeats exactly the losses of an uninterrupted one.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import random
import signal
import sys
import time
import warnings
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from .bridge import BridgeSchedule, magnitude_weight, masked_loss, predict_x0, q_sample, training_target
from .errors import A2SBError, print_error, reject_unknown_keys
from .network import PRESETS, AttnUNetF, NetworkConfig, preset, time_embedding, time_multipliers

if TYPE_CHECKING:
    from .data import DataConfig

CHECKPOINT_FORMAT = "a2sb-train"
CHECKPOINT_VERSION = 1
CONFIG_DIR = Path(__file__).resolve().parent / "configs"
PRECISIONS = ("auto", "bf16", "fp32")


# ================================================================================================ config

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


def _data_config_class():
    from .data import DataConfig

    return DataConfig


@dataclass
class TrainConfig:
    model: ModelSection = field(default_factory=ModelSection)
    data: DataConfig = field(default_factory=lambda: _data_config_class()())
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
            data = _data_config_class().from_dict(d.get("data") or {})
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

    _atomic_write_text(path, yaml.safe_dump(config.to_dict(), sort_keys=False))


# ================================================================================================ utilities

def _mix(*values: int) -> int:
    """A 63-bit seed from integers (stable across runs, platforms and processes)."""
    digest = hashlib.blake2b(",".join(str(int(v)) for v in values).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFFFFFFFFFFFFFF


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)  # also every CUDA device
    np.random.seed(seed % 2**32)
    random.seed(seed)


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _rng_state() -> dict:
    """All global RNG states as tensors and plain values (loadable with weights_only=True)."""
    _, keys, pos, has_gauss, cached = np.random.get_state()
    version, state, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else [],
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": int(version), "state": torch.tensor(state, dtype=torch.int64),
                   "gauss_next": gauss_next},
    }


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["state"].tolist()), p["gauss_next"]))


def save_checkpoint(state: dict, path: Path) -> None:
    """torch.save through a temporary file renamed into place: a crash never leaves half a checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _last_line(err: Exception) -> str:
    lines = [line for line in str(err).strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else type(err).__name__


def load_checkpoint(path: str | os.PathLike) -> dict:
    """A training checkpoint (a .pt file or a run folder's checkpoints/last.pt), without pickled code."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoints" / "last.pt" if (path / "checkpoints").is_dir() else path / "last.pt"
    if not path.is_file():
        raise A2SBError(f"no training checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling errors come in many types
        raise A2SBError(f"cannot read training checkpoint {path}: {_last_line(err)}") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise A2SBError(f"{path} is not an a2sb training checkpoint")
    state["path"] = str(path)
    return state


# ================================================================================================ distributed

@dataclass
class DistInfo:
    world_size: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def distributed_env(env: dict | None = None) -> DistInfo:
    """Rank and world size from torchrun's variables, or from SLURM's when srun starts one task per GPU."""
    env = os.environ if env is None else env
    if "WORLD_SIZE" in env:
        return DistInfo(int(env["WORLD_SIZE"]), int(env.get("RANK", 0)), int(env.get("LOCAL_RANK", 0)))
    if int(env.get("SLURM_NTASKS", "1")) > 1 and "SLURM_PROCID" in env:
        return DistInfo(int(env["SLURM_NTASKS"]), int(env["SLURM_PROCID"]), int(env.get("SLURM_LOCALID", 0)))
    return DistInfo()


def _init_distributed(info: DistInfo, device: torch.device) -> None:
    import torch.distributed as dist

    if not info.enabled or dist.is_initialized():
        return
    if "MASTER_ADDR" not in os.environ or "MASTER_PORT" not in os.environ:
        raise A2SBError("multi-process training needs MASTER_ADDR and MASTER_PORT (torchrun sets them; "
                        "with plain srun export them in the batch script)")
    os.environ.setdefault("RANK", str(info.rank))
    os.environ.setdefault("WORLD_SIZE", str(info.world_size))
    os.environ.setdefault("LOCAL_RANK", str(info.local_rank))
    backend = "nccl" if device.type == "cuda" else "gloo"
    kwargs = {"device_id": device} if device.type == "cuda" else {}
    dist.init_process_group(backend=backend, rank=info.rank, world_size=info.world_size, **kwargs)


def _select_device(config: TrainConfig, info: DistInfo) -> torch.device:
    wanted = config.trainer.device
    if wanted == "cpu" or (wanted == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise A2SBError("trainer.device is cuda but no CUDA device is available")
    index = info.local_rank % torch.cuda.device_count()
    torch.cuda.set_device(index)
    return torch.device("cuda", index)


# ================================================================================================ model

class BridgeNet(nn.Module):
    """One AttnUNetF with its time embedding: forward(x_t, t) -> predicted scaled noise (F22).
    Its state dict holds exactly the network's keys (the frozen multipliers are not saved)."""

    def __init__(self, config: NetworkConfig):
        super().__init__()
        self.net = AttnUNetF(config)
        self.register_buffer("multipliers", time_multipliers(config.emb_channels), persistent=False)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        emb = time_embedding(t.to(device=x.device, dtype=torch.float32), self.multipliers)
        return self.net(x, emb.to(x.dtype))


class EMA:
    """Exponential moving average of a module's floating-point state (float32 copies).

    With `warmup`, the decay after n updates is min(decay, (1 + n) / (10 + n)), so the average forgets
    the random initial weights within the first few hundred steps instead of carrying them for
    ~1/(1 − decay) steps (with decay 0.999 they would still weigh 37 % after 1000 steps)."""

    def __init__(self, module: nn.Module, decay: float, warmup: bool = True):
        self.decay = decay
        self.warmup = warmup
        self.state = {k: v.detach().clone().float() if v.is_floating_point() else v.detach().clone()
                      for k, v in module.state_dict().items()}

    def decay_at(self, updates: int) -> float:
        return min(self.decay, (1 + updates) / (10 + updates)) if self.warmup else self.decay

    @torch.no_grad()
    def update(self, module: nn.Module, updates: int = 10**9) -> None:
        """Fold in the module's weights; `updates` = number of earlier updates (the optimiser step)."""
        decay = self.decay_at(updates)
        for k, v in module.state_dict().items():
            if v.is_floating_point():
                self.state[k].lerp_(v.detach().float(), 1.0 - decay)
            else:
                self.state[k].copy_(v)


@dataclass
class StepResult:
    loss: float
    grad_norm: float
    skipped: bool
    stop: bool


class Trainer:
    """The model, optimiser and EMA of one process, and the training step (F19–F21)."""

    def __init__(self, config: TrainConfig, device: torch.device | str = "cpu", dist_info: DistInfo | None = None):
        self.config = config
        self.device = torch.device(device)
        self.dist = dist_info or DistInfo()
        self.schedule = BridgeSchedule(config.bridge.beta_max)
        self.net_config = config.model.network()
        # The same initial weights on every rank (DDP broadcasts rank 0's anyway).
        torch.manual_seed(_mix(config.trainer.seed, 0xA25B))
        # channels-last weights: the same maths; on a CPU the step is ~5 % faster (train_throughput.py)
        self.module = BridgeNet(self.net_config).to(self.device, memory_format=torch.channels_last)
        self.params = [p for p in self.module.parameters() if p.requires_grad]  # rotary freqs stay frozen
        o = config.optim
        self.optimizer = torch.optim.RAdam(self.params, lr=o.lr, betas=tuple(o.betas), eps=o.eps,
                                           weight_decay=o.weight_decay, decoupled_weight_decay=True)
        self.ema = EMA(self.module, o.ema_decay, o.ema_warmup) if o.ema_decay > 0 else None
        self.autocast_dtype = None
        precision = config.trainer.precision
        if precision == "bf16" or (precision == "auto" and self.device.type == "cuda"):
            self.autocast_dtype = torch.bfloat16
        self.model: nn.Module = self.module
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            self.model = DistributedDataParallel(
                self.module, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                broadcast_buffers=False)
        if config.trainer.compile:
            self.model = torch.compile(self.model)

    # ------------------------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        return {"model": {k: v.detach().cpu() for k, v in self.module.net.state_dict().items()},
                "optimizer": self.optimizer.state_dict(),
                "ema": {k: v.cpu() for k, v in self.ema.state.items()} if self.ema else None}

    def load_state_dict(self, state: dict, optimizer: bool = True, ema: bool = True) -> None:
        try:
            self.module.net.load_state_dict(state["model"])
        except RuntimeError as err:
            raise A2SBError(f"checkpoint does not fit the configured network: {str(err).splitlines()[0]}") from None
        if optimizer and state.get("optimizer") is not None:
            self.optimizer.load_state_dict(state["optimizer"])
        if self.ema is not None:
            source = state.get("ema") if ema and state.get("ema") is not None else self.module.state_dict()
            self.ema.state = {k: v.detach().clone().to(self.device).float() if v.is_floating_point()
                              else v.detach().clone().to(self.device)
                              for k, v in _with_prefix(source, self.module).items()}

    def autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    # ------------------------------------------------------------------------------------ loss
    def sample_t(self, batch: int) -> torch.Tensor:
        """t ~ U[t_min, t_max) per sample, in float64 (so t = 0, where sigma_f = 0, has probability 2^-53)."""
        b = self.config.bridge
        return b.t_min + (b.t_max - b.t_min) * torch.rand(batch, dtype=torch.float64)

    def loss(self, pictures: dict, t: torch.Tensor, noise: torch.Tensor | None = None,
             model: nn.Module | None = None) -> torch.Tensor:
        """F21 loss of a built batch {x0, x1, loss_mask} at times t (B,)."""
        x0, x1 = pictures["x0"], pictures["x1"]
        xt = q_sample(self.schedule, x0, x1, t, noise=noise, ot_ode=self.config.bridge.ot_ode)
        target = training_target(self.schedule, xt, x0, t)
        with self.autocast():
            pred = (model or self.model)(xt, t)
        b = self.config.bridge
        weight = None
        if b.magnitude_floor > 0:
            level = x0 if b.magnitude_weight_from == "target" else \
                predict_x0(self.schedule, xt, t, pred.detach().float())
            weight = magnitude_weight(level, b.magnitude_floor)
        return masked_loss(pred.float(), target, pictures["loss_mask"], weight)

    def masked_sums(self, pictures: dict, t: torch.Tensor, noise: torch.Tensor, model: nn.Module) -> tuple:
        """Numerator and denominator of F21, to pool a loss over many batches."""
        loss = self.loss(pictures, t, noise, model)
        den = pictures["loss_mask"].to(torch.float32).expand_as(pictures["x0"]).sum().clamp_min(1.0)
        return loss * den, den

    # ------------------------------------------------------------------------------------ step
    def train_step(self, micro_batches: list, step: int, build=None, stop: bool = False) -> StepResult:
        """One optimiser step over `micro_batches` (gradient accumulation). Each item is a built batch
        {x0, x1, mask, loss_mask} or, with `build`, a raw batch that `build(batch)` turns into one
        after the step's generators are seeded. A non-finite loss or gradient skips the update."""
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        n = len(micro_batches)
        total = torch.zeros((), device=self.device)
        for k, batch in enumerate(micro_batches):
            _seed_everything(_mix(self.config.trainer.seed, step, self.dist.rank, k))
            pictures = build(batch) if build is not None else batch
            t = self.sample_t(pictures["x0"].shape[0])
            sync = k == n - 1 or not self.dist.enabled
            with contextlib.nullcontext() if sync else self.model.no_sync():
                loss = self.loss(pictures, t)
                (loss / n).backward()
            total += loss.detach()
        clip = self.config.optim.grad_clip
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, clip if clip > 0 else math.inf)
        stats = torch.stack([total / n, torch.tensor(float(stop), device=self.device)])
        if self.dist.enabled:
            import torch.distributed as dist

            dist.all_reduce(stats)
            stats[0] /= self.dist.world_size
        loss_value, stop_flag, norm_value = [*stats.tolist(), float(grad_norm)]
        skipped = not (math.isfinite(loss_value) and math.isfinite(norm_value))
        if skipped:
            self.optimizer.zero_grad(set_to_none=True)
        else:
            lr = learning_rate(self.config.optim, step)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            self.optimizer.step()
            if self.ema is not None:
                self.ema.update(self.module, step)
        return StepResult(loss_value, norm_value, skipped, stop_flag > 0)

    def replica_fingerprint(self) -> torch.Tensor:
        """Per-tensor float64 sums of the weights: equal on every rank while the replicas agree."""
        return torch.stack([v.detach().double().sum() for v in self.module.state_dict().values()]).cpu()

    def eval_module(self, use_ema: bool) -> nn.Module:
        """The network to validate: the raw one, or a copy holding the EMA weights."""
        if not (use_ema and self.ema is not None):
            return self.module
        if getattr(self, "_ema_module", None) is None:
            with torch.device(self.device):
                self._ema_module = BridgeNet(self.net_config)
        self._ema_module.load_state_dict(self.ema.state, strict=False)
        return self._ema_module


def _with_prefix(state: dict, module: BridgeNet) -> dict:
    """Network keys (as saved) -> the BridgeNet's keys (`net.` prefix) where needed."""
    return {(k if k.startswith("net.") else f"net.{k}"): v for k, v in state.items()
            if (k if k.startswith("net.") else f"net.{k}") in module.state_dict()}


def _strip_prefix(state: dict) -> dict:
    return {k.removeprefix("net."): v for k, v in state.items()}


def init_weights(trainer: Trainer, source: str, use_ema: bool = False, optimizer: bool = False) -> str:
    """Initialise from a training run/checkpoint, a model folder or a released checkpoint."""
    path = Path(source)
    if not path.exists():
        raise A2SBError(f"init_from: no such file or folder: {source}")
    is_run = path.suffix == ".pt" or (path.is_dir() and ((path / "checkpoints" / "last.pt").exists()
                                                        or (path / "last.pt").exists()))
    if is_run:
        state = load_checkpoint(path)
        weights = state["model"]
        if use_ema:
            if state.get("ema") is None:
                raise A2SBError(f"init_ema: {state['path']} has no EMA weights")
            weights = _strip_prefix(state["ema"])
        trainer.load_state_dict({"model": weights, "optimizer": state["optimizer"] if optimizer else None},
                                optimizer=optimizer, ema=False)
        return f"{state['path']} (step {state['step']}{', EMA' if use_ema else ''})"
    if optimizer or use_ema:
        raise A2SBError("init_optimizer/init_ema need a training run or checkpoint as init_from")
    from .model import load_model

    model = load_model(str(path))
    if len(model.experts) != 1:
        raise A2SBError(f"init_from: {source} holds {len(model.experts)} experts; initialise from one network")
    trainer.load_state_dict({"model": model.experts[0].state_dict()}, optimizer=False, ema=False)
    return str(path)


# ================================================================================================ data

def _batch_to(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def _data_failures(dataset) -> dict:
    """Unreadable files the dataset has skipped so far (counted across its worker processes)."""
    return {"bad_files": int(getattr(dataset, "bad_files", 0)),
            "skipped_reads": int(getattr(dataset, "skipped_reads", 0))}


# ================================================================================================ logging

class RunLogger:
    """metrics.jsonl always; TensorBoard when installed and enabled; a line on stdout per log."""

    def __init__(self, run_dir: Path, enabled: bool, tensorboard: bool):
        self.enabled = enabled
        self.writer = None
        self.path = run_dir / "metrics.jsonl"
        if not enabled:
            return
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(run_dir / "tensorboard"))
            except ImportError:
                warnings.warn("tensorboard is not installed: logging to metrics.jsonl only "
                              "(pip install tensorboard)", stacklevel=2)

    def log(self, step: int, values: dict, kind: str = "train") -> None:
        if not self.enabled:
            return
        # NaN/inf are not JSON: written as null
        values = {k: (None if isinstance(x, float) and not math.isfinite(x) else x) for k, x in values.items()}
        record = {"step": step, "kind": kind, "time": time.time(), **values}
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for key, value in values.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.writer.add_scalar(f"{kind}/{key}", value, step)

    def image(self, tag: str, image: np.ndarray, step: int) -> None:
        if self.enabled and self.writer is not None:
            self.writer.add_image(tag, image, step, dataformats="HWC")

    def audio(self, tag: str, wave: np.ndarray, step: int, sample_rate: int) -> None:
        if self.enabled and self.writer is not None:
            self.writer.add_audio(tag, torch.from_numpy(np.clip(wave, -1, 1))[None], step, sample_rate=sample_rate)

    def print(self, text: str) -> None:
        if self.enabled:
            print(text, flush=True)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _spectrogram_figure(pictures: list[tuple[str, np.ndarray]]) -> np.ndarray:
    """An RGB image of compressed-magnitude pictures (rows = frequency) stacked vertically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 2.2 * len(pictures)), dpi=80)
    FigureCanvasAgg(fig)
    for i, (title, mag) in enumerate(pictures):
        ax = fig.add_subplot(len(pictures), 1, i + 1)
        ax.imshow(mag, origin="lower", aspect="auto", cmap="magma", vmin=0, vmax=max(float(mag.max()), 1e-3))
        ax.set_title(title, fontsize=9)
        ax.set_ylabel("row")
    fig.tight_layout()
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


# ================================================================================================ validation

class Validator:
    """Validation losses at fixed t (fixed noise) and restorations of a few validation clips."""

    def __init__(self, trainer: Trainer, dataset, data_module, logger: RunLogger, run_dir: Path):
        self.trainer, self.dataset, self.data, self.logger = trainer, dataset, data_module, logger
        self.run_dir = run_dir
        self.indices = list(range(len(dataset)))
        self.first_sample_step: int | None = None

    def _built(self, indices: list[int], seed: int) -> tuple[dict, dict]:
        from torch.utils.data import default_collate

        batch = _batch_to(default_collate([self.dataset[i] for i in indices]), self.trainer.device)
        gen = torch.Generator(device=self.trainer.device).manual_seed(seed)
        return self.data.build_batch(batch, prior=self.trainer.config.data.x1_prior(), generator=gen), batch

    @torch.no_grad()
    def losses(self, step: int) -> dict:
        tr, v = self.trainer, self.trainer.config.validation
        model = tr.eval_module(v.use_ema)
        model.eval()
        rank, world = tr.dist.rank, tr.dist.world_size
        sums = torch.zeros(2 * len(v.t_values), dtype=torch.float64, device=tr.device)
        mine = self.indices[rank::world]  # each rank validates its share; the sums are pooled
        for b in range(0, len(mine), v.batch_size):
            chunk = mine[b:b + v.batch_size]
            pictures, _ = self._built(chunk, _mix(v.noise_seed, chunk[0]))
            for j, tv in enumerate(v.t_values):
                gen = torch.Generator(device=tr.device).manual_seed(_mix(v.noise_seed, chunk[0], j))
                noise = torch.randn(pictures["x0"].shape, generator=gen, device=tr.device)
                t = torch.full((len(chunk),), float(tv), dtype=torch.float64)
                num, den = tr.masked_sums(pictures, t, noise, model)
                sums[2 * j] += num.double()
                sums[2 * j + 1] += den.double()
        if tr.dist.enabled:
            import torch.distributed as dist

            dist.all_reduce(sums)
        values = {f"loss_t{tv:g}": float(sums[2 * j] / sums[2 * j + 1].clamp_min(1.0))
                  for j, tv in enumerate(v.t_values)}
        values["loss_mean"] = float(np.mean(list(values.values())))
        return values

    @torch.no_grad()
    def restorations(self, step: int) -> dict:
        """Restore the first clips with the sampler (main rank only) and score them."""
        from .representation import from_representation
        from .sampler import sample, time_grid

        tr, v = self.trainer, self.trainer.config.validation
        model = tr.eval_module(v.use_ema)
        model.eval()
        clips = self.indices[: v.sample_clips]
        if not clips:
            return {}
        if self.first_sample_step is None:
            self.first_sample_step = step
        pictures, raw = self._built(clips, _mix(v.noise_seed, clips[0]))
        width = pictures["x1"].shape[-1]

        def denoise(x, t):
            with tr.autocast():
                return model(x, torch.full((x.shape[0],), t, device=x.device)).float()

        x0_hat = sample(denoise, pictures["x1"], pictures["mask"], time_grid(v.sample_steps),
                        schedule=tr.schedule, sde=v.sampler == "sde", window=width, hop=width,
                        seed=v.noise_seed, batch_size=len(clips))
        length = raw["clean"].shape[-1]
        restored = from_representation(x0_hat.float().cpu(), length, phase_fix=v.phase_fix).numpy()
        clean = raw["clean"].float().cpu().numpy()
        # The model's input as audio (noise in the hole): the baseline the restoration should beat.
        degraded = from_representation(pictures["x1"].float().cpu(), length, phase_fix=True).numpy()
        values: dict[str, float] = {}
        try:
            from .metrics import compute_metrics
        except ImportError:
            compute_metrics = None
        if compute_metrics is not None:
            scores = [compute_metrics(clean[i], restored[i]) for i in range(len(clips))]
            for key in scores[0]:
                values[key] = float(np.mean([s[key] for s in scores]))
            # the input's scores, to read the restoration's against
            base = [compute_metrics(clean[i], degraded[i]) for i in range(len(clips))]
            for key in ("lsd", "sispec", "log_sispec"):
                if key in base[0]:
                    values[f"degraded_{key}"] = float(np.mean([s[key] for s in base]))
        self._write_examples(step, pictures, x0_hat, clean, restored, degraded)
        return values

    def _write_examples(self, step, pictures, x0_hat, clean, restored, degraded) -> None:
        from scipy.io import wavfile

        folder = self.run_dir / "samples"
        folder.mkdir(exist_ok=True)
        sr = 44100
        for i in range(len(restored)):
            mags = [("degraded", pictures["x1"][i, 0].float().cpu().numpy()),
                    (f"restored (step {step})", x0_hat[i, 0].float().cpu().numpy()),
                    ("clean", pictures["x0"][i, 0].float().cpu().numpy())]
            image = _spectrogram_figure(mags)
            self.logger.image(f"val_sample/clip{i}", image, step)
            if self.trainer.config.validation.log_audio:
                self.logger.audio(f"val_sample/clip{i}/restored", restored[i], step, sr)
                if step == self.first_sample_step:
                    self.logger.audio(f"val_sample/clip{i}/clean", clean[i], step, sr)
                    if degraded is not None:
                        self.logger.audio(f"val_sample/clip{i}/degraded", degraded[i], step, sr)
            wavfile.write(folder / f"step{step:08d}_clip{i}.wav", sr, restored[i].astype(np.float32))
            for name, wave in (("clean", clean), ("degraded", degraded)):
                target = folder / f"clip{i}_{name}.wav"
                if wave is not None and not target.exists():
                    wavfile.write(target, sr, wave[i].astype(np.float32))



# ================================================================================================ the run

class _StopRequest:
    """SIGTERM/SIGINT set a flag; the step in progress finishes, a checkpoint is written and the run
    ends. A second signal acts as usual (kills / raises KeyboardInterrupt)."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.signum: int | None = None
        self.previous: dict = {}

    def __enter__(self):
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        self.signum = signum
        signal.signal(signum, self.previous.get(signum, signal.SIG_DFL))

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

    @property
    def requested(self) -> bool:
        return self.signum is not None


def _config_differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    keys = sorted(set(old) | set(new))
    out = []
    for key in keys:
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _config_differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out


def learning_rate(o: OptimSection, step: int) -> float:
    """The learning rate of optimiser step `step` (0-based) under the configured schedule."""
    if o.lr_decay_start is None or step <= o.lr_decay_start:
        return o.lr
    progress = min((step - o.lr_decay_start) / max(o.lr_decay_steps, 1), 1.0)
    return o.lr_final + (o.lr - o.lr_final) * 0.5 * (1 + math.cos(math.pi * progress))


def _apply_optim_settings(optimizer: torch.optim.Optimizer, o: OptimSection) -> None:
    """The configured hyper-parameters win over those stored with a loaded optimiser state."""
    for group in optimizer.param_groups:
        group.update(lr=o.lr, betas=tuple(o.betas), eps=o.eps, weight_decay=o.weight_decay)


def run_training(config: TrainConfig, run_dir: str | os.PathLike | None = None, resume: bool = False,
                 max_steps: int | None = None) -> dict:
    """Train (or resume) a run; returns {"step", "stopped", "skipped_steps", "run_dir"}.
    Runs as one rank of a DDP job when the environment says so (torchrun, srun)."""
    info = distributed_env()
    device = _select_device(config, info)
    _init_distributed(info, device)
    try:
        with _StopRequest() as stop:
            return _run(config, Path(run_dir or config.trainer.run_dir), resume, max_steps, info, device, stop)
    finally:
        import torch.distributed as dist

        if info.enabled and dist.is_initialized():
            dist.destroy_process_group()


def _run(config: TrainConfig, run_dir: Path, resume: bool, max_steps: int | None, info: DistInfo,
         device: torch.device, stop: _StopRequest) -> dict:
    from . import data as data_module

    tr, v = config.trainer, config.validation
    accum = config.optim.grad_accum
    max_steps = tr.max_steps if max_steps is None else max_steps
    last = run_dir / "checkpoints" / "last.pt"
    if resume and not last.exists():
        raise A2SBError(f"--resume: no checkpoint at {last}")
    if not resume and last.exists():
        raise A2SBError(f"{run_dir} already holds a run (checkpoints/last.pt): pass --resume to continue it, "
                        "or choose another --run-dir")
    if info.is_main:
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    logger = RunLogger(run_dir, info.is_main, tr.tensorboard)
    trainer = Trainer(config, device, info)
    start_step, skipped_total, bad_in_row = 0, 0, 0
    if resume:
        state = load_checkpoint(last)
        old = state.get("config", {})
        if old.get("model") != config.model.to_dict():
            raise A2SBError("the config's model section differs from the checkpoint's; cannot resume")
        for line in _config_differences(old, config.to_dict()):
            logger.print(f"note: config changed since the checkpoint: {line}")
        if state.get("world_size", 1) != info.world_size:
            logger.print(f"note: resuming {state.get('world_size', 1)}-process run with {info.world_size} "
                         "processes: the data order changes from here")
        trainer.load_state_dict(state)
        _set_rng_state(state["rng"])
        start_step = int(state["step"])
        skipped_total = int(state.get("counters", {}).get("skipped_steps", 0))
        bad_in_row = int(state.get("counters", {}).get("bad_in_row", 0))
        logger.print(f"resumed {last} at step {start_step}")
    elif tr.init_from:
        source = init_weights(trainer, tr.init_from, use_ema=tr.init_ema, optimizer=tr.init_optimizer)
        logger.print(f"initialised from {source}")
    _apply_optim_settings(trainer.optimizer, config.optim)
    if info.is_main:
        save_config(config, run_dir / "config.yaml")

    train_set = data_module.TrainingSet(config.data, split="train", seed=tr.seed)
    validator = None
    if v.every > 0 or v.sample_every > 0:
        try:
            val_set = data_module.ValidationSet(config.data, split="validation", max_files=v.max_files,
                                                max_items=v.max_items, seed=tr.seed)
            validator = Validator(trainer, val_set, data_module, logger, run_dir)
        except A2SBError as err:
            logger.print(f"warning: no validation ({err})")
    loader = data_module.make_loader(train_set, tr.batch_size, start_step=start_step * accum,
                                     world_size=info.world_size, rank=info.rank, workers=config.data.workers,
                                     seed=tr.seed, pin_memory=device.type == "cuda")
    batches = iter(loader)
    prior = config.data.x1_prior()

    def build(batch):
        return data_module.build_batch(batch, prior=prior)

    params = sum(p.numel() for p in trainer.module.net.parameters())
    logger.print(f"training {config.model.preset} network ({params / 1e6:.1f}M parameters) on {device}"
                 f"{f' x {info.world_size} processes' if info.enabled else ''}, "
                 f"{tr.batch_size * accum * info.world_size} segments per step, run folder {run_dir}")

    def checkpoint(step: int) -> None:
        fingerprints = trainer.replica_fingerprint()
        if info.enabled:
            import torch.distributed as dist

            gathered = [torch.empty_like(fingerprints.to(device)) for _ in range(info.world_size)]
            dist.all_gather(gathered, fingerprints.to(device))
            fingerprints = torch.stack([g.cpu() for g in gathered])
            if not bool((fingerprints == fingerprints[0]).all()):
                raise A2SBError(f"the weights of the {info.world_size} processes differ at step {step} "
                                "(DDP replicas out of sync)")
        else:
            fingerprints = fingerprints[None]
        if info.is_main:
            state = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "step": step,
                     **trainer.state_dict(), "rng": _rng_state(), "config": config.to_dict(),
                     "counters": {"skipped_steps": skipped_total, "bad_in_row": bad_in_row},
                     "world_size": info.world_size, "replica_fingerprints": fingerprints,
                     "torch_version": str(torch.__version__)}
            save_checkpoint(state, last)
            if tr.keep_checkpoints:
                copy = last.with_name(f"step_{step:08d}.pt")
                with contextlib.suppress(FileNotFoundError):
                    copy.unlink()
                try:
                    os.link(last, copy)  # a hard link: no second copy on disk
                except OSError:
                    import shutil

                    shutil.copyfile(last, copy)

    step = start_step
    per_step = tr.batch_size * accum * info.world_size
    window = {"loss": 0.0, "grad_norm": 0.0, "good": 0, "steps": 0, "data": 0.0, "busy": 0.0}
    first_bad = None
    stopped = False
    saved_at = None
    while max_steps is None or step < max_steps:
        tick = time.perf_counter()
        try:
            micro = [_batch_to(next(batches), device) for _ in range(accum)]
        except StopIteration:  # an endless sampler never ends; restart defensively if one does
            batches = iter(data_module.make_loader(train_set, tr.batch_size, start_step=step * accum,
                                                   world_size=info.world_size, rank=info.rank,
                                                   workers=config.data.workers, seed=tr.seed))
            continue
        window["data"] += time.perf_counter() - tick
        result = trainer.train_step(micro, step, build=build, stop=stop.requested)
        window["busy"] += time.perf_counter() - tick  # throughput excludes validation and checkpoints
        step += 1
        window["steps"] += 1
        if result.skipped:
            skipped_total += 1
            bad_in_row += 1
            first_bad = step if bad_in_row == 1 else first_bad
            logger.print(f"warning: step {step}: non-finite loss ({result.loss}) or gradient norm "
                         f"({result.grad_norm}); update skipped ({bad_in_row} in a row)")
        else:
            bad_in_row = 0
            window["loss"] += result.loss
            window["grad_norm"] += result.grad_norm
            window["good"] += 1
        too_many_bad = bad_in_row >= tr.max_bad_steps
        if step % tr.log_every == 0 or result.stop or step == max_steps or too_many_bad:
            elapsed = window["busy"]
            good = max(window["good"], 1)
            values = {"loss": window["loss"] / good if window["good"] else float("nan"),
                      "grad_norm": window["grad_norm"] / good if window["good"] else float("nan"),
                      "lr": trainer.optimizer.param_groups[0]["lr"],
                      "samples_per_s": window["steps"] * per_step / max(elapsed, 1e-9),
                      "data_wait_frac": window["data"] / max(elapsed, 1e-9),
                      "skipped_steps": skipped_total, **_data_failures(train_set)}
            logger.log(step, values)
            logger.print(f"step {step:>8d}  loss {values['loss']:.5f}  grad_norm {values['grad_norm']:.4f}  "
                         f"lr {values['lr']:.2e}  {values['samples_per_s']:.2f} samples/s"
                         + (f"  skipped {skipped_total}" if skipped_total else "")
                         + (f"  unreadable files {values['bad_files']}" if values["bad_files"] else ""))
            window = {"loss": 0.0, "grad_norm": 0.0, "good": 0, "steps": 0, "data": 0.0, "busy": 0.0}
        if too_many_bad:
            raise A2SBError(f"stopping: {bad_in_row} steps in a row ({first_bad}..{step}) had a non-finite "
                            f"loss or gradient; the weights are those after step {first_bad - 1}. Last "
                            f"checkpoint: {last if last.exists() else 'none yet'}")
        if validator is not None and v.every > 0 and step % v.every == 0:
            values = validator.losses(step)
            logger.log(step, values, kind="val")
            logger.print(f"step {step:>8d}  validation " + "  ".join(f"{k} {x:.5f}" for k, x in values.items()))
        if validator is not None and v.sample_every > 0 and step % v.sample_every == 0 and info.is_main:
            values = validator.restorations(step)
            logger.log(step, values, kind="val_sample")
            if values:
                logger.print(f"step {step:>8d}  restored clips " + "  ".join(
                    f"{k} {x:.4f}" for k, x in values.items() if k in ("lsd", "sispec", "log_sispec")))
        if step % tr.checkpoint_every == 0 or result.stop or step == max_steps:
            checkpoint(step)
            saved_at = step
        if result.stop:
            stopped = True
            name = signal.Signals(stop.signum).name if stop.signum else "a signal on another process"
            logger.print(f"stopped by {name} after step {step}; checkpoint {last} written "
                         f"(continue with --resume)")
            break
    if saved_at != step and step > start_step:
        checkpoint(step)
    if step == start_step and not stopped:
        logger.print(f"nothing to do: the run is at step {step} (max_steps {max_steps})")
    logger.close()
    return {"step": step, "stopped": stopped, "skipped_steps": skipped_total, "run_dir": str(run_dir)}


# ================================================================================================ export

def export_runs(runs: list[str | os.PathLike], output: str | os.PathLike, t_cutoffs: list[float] | None = None,
                ema: bool = False, half: bool = False, steps: int | None = None, sampler: str = "sde",
                stereo_mix: float = 0.0, band_level: str = "off", band_level_offsets: dict | None = None):
    """Build an inference bundle from one run or several expert runs (model folder for load_model).
    Without `t_cutoffs` the experts are ordered by their training t ranges and split where they meet.
    `stereo_mix` (dsp prior, restoration only: training items are mono) goes into the model's prior;
    `band_level` is the model's default level correction of bandwidth extension (a2sb.pipeline), and
    `band_level_offsets` band replication's measured level error it takes off (benchmarks/level_predictability.py)."""
    from .model import PUBLISHED_STEPS, A2SBModel, save_model
    from .prior import Prior

    if not runs:
        raise A2SBError("no runs given")
    states = [load_checkpoint(r) for r in runs]
    nets = [ModelSection.from_dict(s["config"]["model"]).network() for s in states]
    if any(n != nets[0] for n in nets[1:]):
        raise A2SBError("the runs use different network configurations; experts must share one")
    bridges = [s["config"].get("bridge", {}) for s in states]
    ranges = [(float(b.get("t_min", 0.0)), float(b.get("t_max", 1.0))) for b in bridges]
    betas = {float(b.get("beta_max", 1.0)) for b in bridges}
    if len(betas) != 1:
        raise A2SBError(f"the runs use different beta_max values: {sorted(betas)}")
    order = list(range(len(states)))
    if t_cutoffs is None:
        order.sort(key=lambda i: ranges[i])
        t_cutoffs = [ranges[i][0] for i in order[1:]]
        for a, b in zip(order, order[1:]):
            if ranges[a][1] != ranges[b][0]:
                warnings.warn(f"t ranges {ranges[a]} and {ranges[b]} do not meet; splitting at {ranges[b][0]}",
                              stacklevel=2)
        if len(states) > 1 and (len(set(t_cutoffs)) != len(t_cutoffs) or min(t_cutoffs) <= 0):
            raise A2SBError(f"cannot derive t cutoffs from the runs' t ranges {[ranges[i] for i in order]}: "
                            "give --t-cutoffs")
    elif len(t_cutoffs) != len(states) - 1:
        raise A2SBError(f"{len(states)} run(s) need {len(states) - 1} t cutoff(s), got {len(t_cutoffs)}")
    experts, provenance = [], []
    for i in order:
        state = states[i]
        weights = state["model"]
        if ema:
            if state.get("ema") is None:
                raise A2SBError(f"--ema: {state['path']} has no EMA weights (optim.ema_decay was 0)")
            weights = _strip_prefix(state["ema"])
        net = AttnUNetF(nets[0])
        net.load_state_dict(weights)
        experts.append(net.eval())
        provenance.append({"checkpoint": _portable_path(state["path"]), "step": int(state["step"]),
                           "t_range": list(ranges[i]), "ema": ema})
    priors = {(d.get("prior", "noise"), float(d.get("fill_noise", 0.5)), float(d.get("prior_context_s", 4.0)))
              for d in (s["config"].get("data", {}) for s in states)}
    if len(priors) != 1:
        raise A2SBError(f"the runs fill x1 differently (prior, noise, context): {sorted(priors)}; "
                        "experts must share one")
    # restore with windows as long as the training segments (rotary positions are relative to the map)
    frames = 1 + int(states[0]["config"].get("data", {}).get("segment_samples", 130560)) // 512
    window = min(256, frames - frames % 2 ** nets[0].n_updown_levels)
    model = A2SBModel(nets[0], experts, t_cutoffs=t_cutoffs, beta_max=betas.pop(),
                      default_steps=steps or PUBLISHED_STEPS, default_window=window, default_hop=window // 2,
                      default_sampler=sampler, provenance={"source": "a2sb train", "experts": provenance},
                      default_band_level=band_level, band_level_offsets=band_level_offsets,
                      prior=Prior(*priors.pop(), stereo_mix=stereo_mix))
    save_model(model, output, half=half)
    return model


def _portable_path(path) -> str:
    """A checkpoint path fit to ship in a model's provenance: relative to the working directory when it
    lies below it (e.g. runs/bundled/checkpoints/last.pt), else only its file name, never the machine's
    absolute layout."""
    rel = os.path.relpath(os.path.abspath(path))
    return Path(rel).as_posix() if not rel.startswith("..") else os.path.basename(str(path))


# ================================================================================================ command line

def _add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", metavar="CONFIG",
                   help="training config (YAML) or the name of a bundled one (pretrain, tiny, ...); "
                        "with --resume it defaults to RUN_DIR/config.yaml")
    p.add_argument("--run-dir", metavar="DIR", help="run folder (default: trainer.run_dir of the config)")
    p.add_argument("--resume", action="store_true", help="continue the run in the run folder from checkpoints/last.pt")
    p.add_argument("--max-steps", type=int, metavar="N", help="stop after N optimiser steps in total")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="override a config value, e.g. --set optim.lr=1e-4 (repeatable)")


def _train_command(args) -> int:
    source = args.config
    if source is None:
        if not (args.resume and args.run_dir):
            raise A2SBError("give a CONFIG (or --resume --run-dir DIR to reuse the run's config.yaml)")
        source = Path(args.run_dir) / "config.yaml"
    config = load_config(source, args.overrides)
    if not distributed_env().enabled:
        run_training(config, args.run_dir, resume=args.resume, max_steps=args.max_steps)
        return 0
    # A DDP rank leaves without the interpreter's shutdown: after a clean run and destroy_process_group,
    # torch's gloo backend sometimes aborts in its C++ static destructors ("terminate called without an
    # active exception", SIGABRT; benchmarks/ddp_exit.py: 6 of 48 two-process runs, 0 with os._exit): the job fails.
    # Everything the run writes is closed by now (checkpoint, metrics, TensorBoard, data workers).
    code = 0
    try:
        run_training(config, args.run_dir, resume=args.resume, max_steps=args.max_steps)
    except A2SBError as err:
        code = print_error(err)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _export_command(args) -> int:
    model = export_runs(args.runs, args.output, t_cutoffs=args.t_cutoffs, ema=args.ema, half=args.half,
                        steps=args.steps, sampler=args.sampler, stereo_mix=args.stereo_mix,
                        band_level=args.band_level, band_level_offsets=_read_offsets(args.band_level_offsets))
    print(f"wrote {args.output}: {len(model.experts)} expert(s), t cutoffs {model.t_cutoffs}")
    return 0


def _read_offsets(path: str | None) -> dict | None:
    if path is None:
        return None
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise A2SBError(f"cannot read band level offsets {path}: {err}") from None


def _cutoffs(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def add_commands(subparsers) -> None:
    p = subparsers.add_parser("train", help="train a model (one process, one GPU, or DDP under torchrun)",
                              description="Train an A2SB bridge model from a YAML config. Under torchrun (or srun "
                                          "with one task per GPU) every process runs this command; they form "
                                          "a DDP job by themselves.")
    _add_train_arguments(p)
    p.set_defaults(func=_train_command)
    e = subparsers.add_parser("export", help="build a model folder from training runs",
                              description="Build an inference model folder (for `a2sb restore --model` and "
                                          "a2sb.load_model) from one run, or several expert runs.")
    e.add_argument("runs", nargs="+", metavar="RUN", help="run folders or training checkpoints (.pt)")
    e.add_argument("-o", "--output", required=True, metavar="MODEL_DIR")
    e.add_argument("--t-cutoffs", type=_cutoffs, metavar="T[,T...]",
                   help="expert boundaries, runs taken in the given order (default: from the runs' t ranges)")
    e.add_argument("--ema", action="store_true", help="export the EMA weights")
    e.add_argument("--half", action="store_true", help="store float16 weights (half the size)")
    e.add_argument("--steps", type=int, metavar="N", help="default number of sampling steps of the model")
    e.add_argument("--sampler", choices=("sde", "ode"), default="sde", help="default sampler of the model")
    e.add_argument("--stereo-mix", type=float, default=0.0, metavar="M",
                   help="dsp prior: share of the mid in both channels' band replication (0..1, default 0)")
    e.add_argument("--band-level", choices=("off", "match", "cap"), default="off",
                   help="the model's default level correction of bandwidth extension (default off)")
    e.add_argument("--band-level-offsets", metavar="JSON",
                   help="band replication's level error per octave, taken off the band level reference "
                        "(written by benchmarks/level_predictability.py --fit)")
    e.set_defaults(func=_export_command)


def main(argv: list[str] | None = None) -> int:
    """`python -m a2sb.train CONFIG [...]`: the `a2sb train` command (handy under torchrun -m)."""
    parser = argparse.ArgumentParser(prog="python -m a2sb.train", description="Train an A2SB bridge model.")
    _add_train_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return _train_command(args)
    except A2SBError as err:
        return print_error(err)


if __name__ == "__main__":
    sys.exit(main())
