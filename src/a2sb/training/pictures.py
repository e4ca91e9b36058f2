"""A batch of training items -> the pictures of one training step: x0 (clean), x1 (degraded, its hole
filled as the run's prior says), the mask of what is generated and the loss mask (docs/method.md
§Representation, §Masks, §Training)."""

from __future__ import annotations

import torch

from ..prior import Prior, batch_estimate, fill
from ..representation import spec_to_representation, stft


def build_batch(batch: dict, noise: torch.Tensor | None = None, prior: Prior | None = None,
                generator: torch.Generator | None = None) -> dict:
    """Collated items -> {"x0", "x1", "mask", "loss_mask"} on the batch's device.

    x0 = picture of clean (B×3×H×W); mask (B×1×H×W, 1 = generate) = rows ≥ cutoff_row ∪ columns in
    [gap) ∪ the codec holes (`batch["holes"]`, B×H×W bool, when the batch has them); loss_mask =
    mask × (rows < true_row) (F14); x1 = picture of degraded with the hole filled as `prior` says
    (default: the published white noise of std 0.5 in all 3 channels, F13; the dsp prior puts the DSP
    estimate of `batch_estimate` under the noise: in codec holes that is the decode itself, as
    restoration gives them). Masks have one channel: expand to 3 before normalising a loss by their
    sum if the published normalisation (docs/method.md §Training, F21) is wanted.
    """
    prior = prior or Prior()
    clean = batch["clean"].float()
    degraded = batch.get("degraded")
    spec = stft(clean)
    x0 = spec_to_representation(spec)
    xd, spec_d = x0, spec
    if degraded is not None:
        degraded = degraded.to(clean.device, torch.float32)
        differs = (degraded != clean).any(dim=-1)
        if bool(differs.any()):  # only items whose waveform was degraded need a second STFT
            spec_d = spec.clone()
            spec_d[differs] = stft(degraded[differs])
            xd = x0.clone()
            xd[differs] = spec_to_representation(spec_d[differs])
    b, _, h, w = x0.shape
    device = x0.device
    rows = torch.arange(h, device=device).view(1, h, 1)
    cols = torch.arange(w, device=device).view(1, 1, w)
    cutoff = batch["cutoff_row"].to(device).view(-1, 1, 1)
    gap = batch["gap"].to(device).view(-1, 2)
    span = (cols >= gap[:, 0].view(-1, 1, 1)) & (cols < gap[:, 1].view(-1, 1, 1))
    generate = (rows >= cutoff) | span
    holes = batch.get("holes")
    if holes is not None:
        generate = generate | holes.to(device, torch.bool)
    mask = generate.unsqueeze(1).to(x0.dtype)
    keep = (rows < batch["true_row"].to(device).view(-1, 1, 1)).unsqueeze(1)
    loss_mask = mask * keep.to(x0.dtype)
    if noise is None:
        noise = torch.randn(x0.shape, generator=generator, device=device, dtype=x0.dtype)
    estimate = batch_estimate(spec_d, batch) if prior.informative else None
    x1 = fill(xd, mask, noise.to(device, x0.dtype), prior, estimate)
    return {"x0": x0, "x1": x1, "mask": mask, "loss_mask": loss_mask}


def batch_to(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
