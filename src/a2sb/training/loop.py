"""The training run: `run_training(config, run_dir)`, in a single process on the CPU or one GPU, or as
one rank of a DDP job over several GPUs or nodes when started by torchrun (or srun with one task per
GPU); the launcher's environment decides.

Reproducibility: every random number of optimiser step s (data degradation noise, t, bridge noise,
dropout) comes from generators seeded by (seed, s, rank, micro-batch), and the data is addressed by
index, so a resumed run repeats exactly the losses of an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from ..errors import A2SBError
from .config import TrainConfig, save_config
from .datasets import TrainingSet, ValidationSet, make_loader
from .distributed import DistInfo, distributed_env, init_distributed, select_device
from .pictures import batch_to, build_batch
from .state import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .trainer import Trainer, apply_optim_settings, init_weights
from .validation import Validator


def _data_failures(dataset) -> dict:
    """Unreadable files the dataset has skipped so far (counted across its worker processes)."""
    return {"bad_files": int(getattr(dataset, "bad_files", 0)),
            "skipped_reads": int(getattr(dataset, "skipped_reads", 0))}


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


def run_training(config: TrainConfig, run_dir: str | os.PathLike | None = None, resume: bool = False,
                 max_steps: int | None = None) -> dict:
    """Train (or resume) a run; returns {"step", "stopped", "skipped_steps", "run_dir"}.
    Runs as one rank of a DDP job when the environment says so (torchrun, srun)."""
    info = distributed_env()
    device = select_device(config, info)
    init_distributed(info, device)
    try:
        with _StopRequest() as stop:
            return _run(config, Path(run_dir or config.trainer.run_dir), resume, max_steps, info, device, stop)
    finally:
        import torch.distributed as dist

        if info.enabled and dist.is_initialized():
            dist.destroy_process_group()


def _run(config: TrainConfig, run_dir: Path, resume: bool, max_steps: int | None, info: DistInfo,
         device: torch.device, stop: _StopRequest) -> dict:
    tr = config.trainer
    accum = config.optim.grad_accum
    max_steps = tr.max_steps if max_steps is None else max_steps
    last = _checkpoint_path(run_dir, resume, info)
    logger = RunLogger(run_dir, info.is_main, tr.tensorboard)
    trainer = Trainer(config, device, info)
    counters = {"skipped_steps": 0, "bad_in_row": 0}
    start_step = 0
    if resume:
        start_step = _resume(trainer, last, config, info, logger, counters)
    elif tr.init_from:
        source = init_weights(trainer, tr.init_from, use_ema=tr.init_ema, optimizer=tr.init_optimizer)
        logger.print(f"initialised from {source}")
    apply_optim_settings(trainer.optimizer, config.optim)
    if info.is_main:
        save_config(config, run_dir / "config.yaml")

    train_set = TrainingSet(config.data, split="train", seed=tr.seed)
    validator = _validator(trainer, logger, run_dir)

    def loader(step: int):
        return iter(make_loader(train_set, tr.batch_size, start_step=step * accum, world_size=info.world_size,
                                rank=info.rank, workers=config.data.workers, seed=tr.seed,
                                pin_memory=device.type == "cuda"))

    batches = loader(start_step)
    prior = config.data.x1_prior()

    def build(batch):
        return build_batch(batch, prior=prior)

    params = sum(p.numel() for p in trainer.net.parameters())
    logger.print(f"training {config.model.preset} network ({params / 1e6:.1f}M parameters) on {device}"
                 f"{f' x {info.world_size} processes' if info.enabled else ''}, "
                 f"{tr.batch_size * accum * info.world_size} segments per step, run folder {run_dir}")

    step = start_step
    window = _LogWindow(tr.batch_size * accum * info.world_size)
    first_bad = None
    stopped = False
    saved_at = None
    while max_steps is None or step < max_steps:
        tick = time.perf_counter()
        try:
            micro = [batch_to(next(batches), device) for _ in range(accum)]
        except StopIteration:  # an endless sampler never ends; restart defensively if one does
            batches = loader(step)
            continue
        window.data += time.perf_counter() - tick
        result = trainer.train_step(micro, step, build=build, stop=stop.requested)
        window.busy += time.perf_counter() - tick  # throughput excludes validation and checkpoints
        step += 1
        window.add(result)
        if result.skipped:
            counters["skipped_steps"] += 1
            counters["bad_in_row"] += 1
            first_bad = step if counters["bad_in_row"] == 1 else first_bad
            logger.print(f"warning: step {step}: non-finite loss ({result.loss}) or gradient norm "
                         f"({result.grad_norm}); update skipped ({counters['bad_in_row']} in a row)")
        else:
            counters["bad_in_row"] = 0
        too_many_bad = counters["bad_in_row"] >= tr.max_bad_steps
        if step % tr.log_every == 0 or result.stop or step == max_steps or too_many_bad:
            window.emit(step, logger, trainer, counters["skipped_steps"], train_set)
            window = _LogWindow(window.per_step)
        if too_many_bad:
            raise A2SBError(f"stopping: {counters['bad_in_row']} steps in a row ({first_bad}..{step}) had a "
                            f"non-finite loss or gradient; the weights are those after step {first_bad - 1}. "
                            f"Last checkpoint: {last if last.exists() else 'none yet'}")
        if validator is not None:
            _validate(validator, step, config, info, logger)
        if step % tr.checkpoint_every == 0 or result.stop or step == max_steps:
            _checkpoint(trainer, config, info, last, step, counters)
            saved_at = step
        if result.stop:
            stopped = True
            name = signal.Signals(stop.signum).name if stop.signum else "a signal on another process"
            logger.print(f"stopped by {name} after step {step}; checkpoint {last} written "
                         f"(continue with --resume)")
            break
    if saved_at != step and step > start_step:
        _checkpoint(trainer, config, info, last, step, counters)
    if step == start_step and not stopped:
        logger.print(f"nothing to do: the run is at step {step} (max_steps {max_steps})")
    logger.close()
    return {"step": step, "stopped": stopped, "skipped_steps": counters["skipped_steps"], "run_dir": str(run_dir)}


def _checkpoint_path(run_dir: Path, resume: bool, info: DistInfo) -> Path:
    """checkpoints/last.pt of the run folder, which must hold a run to resume and none otherwise."""
    last = run_dir / "checkpoints" / "last.pt"
    if resume and not last.exists():
        raise A2SBError(f"--resume: no checkpoint at {last}")
    if not resume and last.exists():
        raise A2SBError(f"{run_dir} already holds a run (checkpoints/last.pt): pass --resume to continue it, "
                        "or choose another --run-dir")
    if info.is_main:
        last.parent.mkdir(parents=True, exist_ok=True)
    return last


def _resume(trainer: Trainer, last: Path, config: TrainConfig, info: DistInfo, logger: RunLogger,
            counters: dict) -> int:
    """Load the run's last checkpoint (weights, optimiser, EMA, random states, counters); its step."""
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
    set_rng_state(state["rng"])
    start_step = int(state["step"])
    for key in counters:
        counters[key] = int(state.get("counters", {}).get(key, 0))
    logger.print(f"resumed {last} at step {start_step}")
    return start_step


def _validator(trainer: Trainer, logger: RunLogger, run_dir: Path) -> Validator | None:
    v, config = trainer.config.validation, trainer.config
    if v.every <= 0 and v.sample_every <= 0:
        return None
    try:
        val_set = ValidationSet(config.data, split="validation", max_files=v.max_files, max_items=v.max_items,
                                seed=config.trainer.seed)
    except A2SBError as err:
        logger.print(f"warning: no validation ({err})")
        return None
    return Validator(trainer, val_set, logger, run_dir)


def _validate(validator: Validator, step: int, config: TrainConfig, info: DistInfo, logger: RunLogger) -> None:
    """The validation losses and restorations due at `step`."""
    v = config.validation
    if v.every > 0 and step % v.every == 0:
        values = validator.losses(step)
        logger.log(step, values, kind="val")
        logger.print(f"step {step:>8d}  validation " + "  ".join(f"{k} {x:.5f}" for k, x in values.items()))
    if v.sample_every > 0 and step % v.sample_every == 0 and info.is_main:
        values = validator.restorations(step)
        logger.log(step, values, kind="val_sample")
        if values:
            logger.print(f"step {step:>8d}  restored clips " + "  ".join(
                f"{k} {x:.4f}" for k, x in values.items() if k in ("lsd", "sispec", "log_sispec")))


def _checkpoint(trainer: Trainer, config: TrainConfig, info: DistInfo, last: Path, step: int,
                counters: dict) -> None:
    """Check that the replicas agree, then (main rank) write last.pt and, if kept, step_XXXXXXXX.pt."""
    fingerprints = trainer.replica_fingerprint()
    if info.enabled:
        import torch.distributed as dist

        gathered = [torch.empty_like(fingerprints.to(trainer.device)) for _ in range(info.world_size)]
        dist.all_gather(gathered, fingerprints.to(trainer.device))
        fingerprints = torch.stack([g.cpu() for g in gathered])
        if not bool((fingerprints == fingerprints[0]).all()):
            raise A2SBError(f"the weights of the {info.world_size} processes differ at step {step} "
                            "(DDP replicas out of sync)")
    else:
        fingerprints = fingerprints[None]
    if not info.is_main:
        return
    state = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "step": step,
             **trainer.state_dict(), "rng": rng_state(), "config": config.to_dict(), "counters": dict(counters),
             "world_size": info.world_size, "replica_fingerprints": fingerprints,
             "torch_version": str(torch.__version__)}
    save_checkpoint(state, last)
    if config.trainer.keep_checkpoints:
        copy = last.with_name(f"step_{step:08d}.pt")
        with contextlib.suppress(FileNotFoundError):
            copy.unlink()
        try:
            os.link(last, copy)  # a hard link: no second copy on disk
        except OSError:
            import shutil

            shutil.copyfile(last, copy)


class _LogWindow:
    """Sums over the steps since the last log line: loss and gradient norm of the good steps, time."""

    def __init__(self, per_step: int):
        self.per_step = per_step  # segments per optimiser step, all ranks
        self.loss = self.grad_norm = self.data = self.busy = 0.0
        self.good = self.steps = 0

    def add(self, result) -> None:
        self.steps += 1
        if not result.skipped:
            self.loss += result.loss
            self.grad_norm += result.grad_norm
            self.good += 1

    def emit(self, step: int, logger: RunLogger, trainer: Trainer, skipped_total: int, dataset) -> None:
        good = max(self.good, 1)
        elapsed = max(self.busy, 1e-9)
        values = {"loss": self.loss / good if self.good else float("nan"),
                  "grad_norm": self.grad_norm / good if self.good else float("nan"),
                  "lr": trainer.optimizer.param_groups[0]["lr"],
                  "samples_per_s": self.steps * self.per_step / elapsed,
                  "data_wait_frac": self.data / elapsed,
                  "skipped_steps": skipped_total, **_data_failures(dataset)}
        logger.log(step, values)
        logger.print(f"step {step:>8d}  loss {values['loss']:.5f}  grad_norm {values['grad_norm']:.4f}  "
                     f"lr {values['lr']:.2e}  {values['samples_per_s']:.2f} samples/s"
                     + (f"  skipped {skipped_total}" if skipped_total else "")
                     + (f"  unreadable files {values['bad_files']}" if values["bad_files"] else ""))
