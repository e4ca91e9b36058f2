"""What makes a run resumable: seeds derived from (seed, step, rank, micro-batch), the global random
states, and training checkpoints written atomically and read without unpickling code."""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

import numpy as np
import torch

from ..errors import A2SBError

CHECKPOINT_FORMAT = "a2sb-train"
CHECKPOINT_VERSION = 1


def mix_seed(*values: int) -> int:
    """A 63-bit seed from integers (stable across runs, platforms and processes)."""
    digest = hashlib.blake2b(",".join(str(int(v)) for v in values).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFFFFFFFFFFFFFF


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)  # also every CUDA device
    np.random.seed(seed % 2**32)
    random.seed(seed)


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def rng_state() -> dict:
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


def set_rng_state(state: dict) -> None:
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


