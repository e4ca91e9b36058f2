"""Rank and world size from the launcher (torchrun or srun), the process group and the device of a rank."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from ..errors import A2SBError

if TYPE_CHECKING:
    from .config import TrainConfig


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


def init_distributed(info: DistInfo, device: torch.device) -> None:
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


def select_device(config: TrainConfig, info: DistInfo) -> torch.device:
    wanted = config.trainer.device
    if wanted == "cpu" or (wanted == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise A2SBError("trainer.device is cuda but no CUDA device is available")
    index = info.local_rank % torch.cuda.device_count()
    torch.cuda.set_device(index)
    return torch.device("cuda", index)


