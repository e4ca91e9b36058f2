"""One process's share of training: the network (a2sb.network.NoisePredictor, the wrapper the sampler
also calls), the optimiser, the EMA of the weights, the loss and the optimiser step (docs/method.md
§Training), and initialising the weights from another run or model."""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..bridge import BridgeSchedule, magnitude_weight, masked_loss, predict_x0, q_sample, training_target
from ..errors import A2SBError
from ..network import NoisePredictor
from .config import OptimSection, TrainConfig
from .distributed import DistInfo
from .state import load_checkpoint, mix_seed, seed_everything


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
    """The model, optimiser and EMA of one process, and the training step (docs/method.md §Bridge, F19–F21)."""

    def __init__(self, config: TrainConfig, device: torch.device | str = "cpu", dist_info: DistInfo | None = None):
        self.config = config
        self.device = torch.device(device)
        self.dist = dist_info or DistInfo()
        self.schedule = BridgeSchedule(config.bridge.beta_max)
        self.net_config = config.model.network()
        # The same initial weights on every rank (DDP broadcasts rank 0's anyway).
        torch.manual_seed(mix_seed(config.trainer.seed, 0xA25B))
        # One expert; channels-last weights: the same maths, on a CPU the step is ~5 % faster (train_throughput.py)
        self.module = NoisePredictor(self.net_config).to(self.device, memory_format=torch.channels_last)
        self.net = self.module.experts[0]  # the trained network: what checkpoints, the EMA and exports hold
        self.params = [p for p in self.module.parameters() if p.requires_grad]  # rotary freqs stay frozen
        o = config.optim
        self.optimizer = torch.optim.RAdam(self.params, lr=o.lr, betas=tuple(o.betas), eps=o.eps,
                                           weight_decay=o.weight_decay, decoupled_weight_decay=True)
        self.ema = EMA(self.net, o.ema_decay, o.ema_warmup) if o.ema_decay > 0 else None
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
        return {"model": {k: v.detach().cpu() for k, v in self.net.state_dict().items()},
                "optimizer": self.optimizer.state_dict(),
                "ema": {k: v.cpu() for k, v in self.ema.state.items()} if self.ema else None}

    def load_state_dict(self, state: dict, optimizer: bool = True, ema: bool = True) -> None:
        try:
            self.net.load_state_dict(state["model"])
        except RuntimeError as err:
            raise A2SBError(f"checkpoint does not fit the configured network: {str(err).splitlines()[0]}") from None
        if optimizer and state.get("optimizer") is not None:
            self.optimizer.load_state_dict(state["optimizer"])
        if self.ema is not None:
            source = state.get("ema") if ema and state.get("ema") is not None else self.net.state_dict()
            self.ema.state = {k: v.detach().clone().to(self.device).float() if v.is_floating_point()
                              else v.detach().clone().to(self.device)
                              for k, v in network_keys(source).items()}

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
        """The loss (docs/method.md §Training, F21) of a built batch {x0, x1, loss_mask} at times t (B,)."""
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
            seed_everything(mix_seed(self.config.trainer.seed, step, self.dist.rank, k))
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
                self.ema.update(self.net, step)
        return StepResult(loss_value, norm_value, skipped, stop_flag > 0)

    def replica_fingerprint(self) -> torch.Tensor:
        """Per-tensor float64 sums of the weights: equal on every rank while the replicas agree."""
        return torch.stack([v.detach().double().sum() for v in self.net.state_dict().values()]).cpu()

    def eval_module(self, use_ema: bool) -> nn.Module:
        """The network to validate: the raw one, or a copy holding the EMA weights."""
        if not (use_ema and self.ema is not None):
            return self.module
        if getattr(self, "_ema_module", None) is None:
            with torch.device(self.device):
                # contiguous weights, as validation of the EMA has always used (channels-last: other rounding)
                self._ema_module = NoisePredictor(self.net_config).to(memory_format=torch.contiguous_format)
        self._ema_module.experts[0].load_state_dict(self.ema.state)
        return self._ema_module


def network_keys(state: dict) -> dict:
    """A network's weights under its own keys: checkpoints before the `NoisePredictor` kept the EMA
    under the keys of the old training wrapper (`net.` + the network's key)."""
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
            weights = network_keys(state["ema"])
        trainer.load_state_dict({"model": weights, "optimizer": state["optimizer"] if optimizer else None},
                                optimizer=optimizer, ema=False)
        return f"{state['path']} (step {state['step']}{', EMA' if use_ema else ''})"
    if optimizer or use_ema:
        raise A2SBError("init_optimizer/init_ema need a training run or checkpoint as init_from")
    from ..model import load_model

    model = load_model(str(path))
    if len(model.experts) != 1:
        raise A2SBError(f"init_from: {source} holds {len(model.experts)} experts; initialise from one network")
    trainer.load_state_dict({"model": model.experts[0].state_dict()}, optimizer=False, ema=False)
    return str(path)



def learning_rate(o: OptimSection, step: int) -> float:
    """The learning rate of optimiser step `step` (0-based) under the configured schedule."""
    if o.lr_decay_start is None or step <= o.lr_decay_start:
        return o.lr
    progress = min((step - o.lr_decay_start) / max(o.lr_decay_steps, 1), 1.0)
    return o.lr_final + (o.lr - o.lr_final) * 0.5 * (1 + math.cos(math.pi * progress))


def apply_optim_settings(optimizer: torch.optim.Optimizer, o: OptimSection) -> None:
    """The configured hyper-parameters win over those stored with a loaded optimiser state."""
    for group in optimizer.param_groups:
        group.update(lr=o.lr, betas=tuple(o.betas), eps=o.eps, weight_decay=o.weight_decay)
