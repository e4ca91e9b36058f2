"""The Schrödinger bridge between the clean picture (t = 0) and the degraded one (t = 1) (docs/method.md §Bridge).

Symmetric schedule beta(t) = beta_max·t² (t ≤ 0.5), beta_max·(1−t)² (t > 0.5), with closed-form
integrals, so every standard deviation is exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class BridgeSchedule:
    beta_max: float = 1.0

    def integral(self, t: torch.Tensor) -> torch.Tensor:
        """I(t) = ∫0^t beta (F16), computed in float64."""
        t = torch.as_tensor(t, dtype=torch.float64)
        b = self.beta_max
        return torch.where(t <= 0.5, b * t**3 / 3, b / 12 - b * (1 - t) ** 3 / 3)

    def std_fwd(self, t) -> torch.Tensor:
        """sigma_f(t) = sqrt(I(t)) (F17), float64."""
        return torch.sqrt(self.integral(t))

    def std_rev(self, t) -> torch.Tensor:
        """sigma_r(t) = sqrt(I(1 − t)) (F17), float64."""
        return torch.sqrt(self.integral(1 - torch.as_tensor(t, dtype=torch.float64)))

    def std_sb(self, t) -> torch.Tensor:
        """Std of the bridge marginal (F18), float64."""
        f2, r2 = self.integral(t), self.integral(1 - torch.as_tensor(t, dtype=torch.float64))
        return torch.sqrt(f2 * r2 / (f2 + r2))

    def marginal(self, t) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Coefficients (a, b, sigma) of x_t = a·x0 + b·x1 + sigma·eps (F19), float64."""
        f2, r2 = self.integral(t), self.integral(1 - torch.as_tensor(t, dtype=torch.float64))
        return r2 / (f2 + r2), f2 / (f2 + r2), torch.sqrt(f2 * r2 / (f2 + r2))


def _per_sample(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.to(like.dtype).to(like.device).reshape(-1, *([1] * (like.dim() - 1)))


def q_sample(schedule: BridgeSchedule, x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor,
             noise: torch.Tensor | None = None, ot_ode: bool = False) -> torch.Tensor:
    """A draw of x_t from q(x_t | x0, x1) (F19); OT-ODE drops the noise term. t: (B,)."""
    a, b, sigma = (_per_sample(v, x0) for v in schedule.marginal(t.cpu()))
    xt = a * x0 + b * x1
    if not ot_ode:
        xt = xt + sigma * (torch.randn_like(x0) if noise is None else noise)
    return xt


def training_target(schedule: BridgeSchedule, xt: torch.Tensor, x0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The network's regression target (x_t − x0)/sigma_f(t) (F20)."""
    return (xt - x0) / _per_sample(schedule.std_fwd(t.cpu()), xt)


def predict_x0(schedule: BridgeSchedule, xt: torch.Tensor, t: torch.Tensor, net_out: torch.Tensor) -> torch.Tensor:
    """Clean estimate x_t − sigma_f(t)·net (F22)."""
    return xt - _per_sample(schedule.std_fwd(t.cpu()), xt) * net_out


def masked_loss(pred: torch.Tensor, target: torch.Tensor, loss_mask: torch.Tensor,
                weight: torch.Tensor | None = None) -> torch.Tensor:
    """Squared error inside the degraded region only, normalised by the mask sum over the whole batch
    (F21). `loss_mask` broadcasts against pred (e.g. B×1×H×W); `weight` (optional, broadcasting too)
    scales each squared error without changing the normalisation."""
    loss_mask = loss_mask.to(pred.dtype).expand_as(pred)
    err = (pred - target) ** 2 * loss_mask
    if weight is not None:
        err = err * weight.to(pred.dtype)
    return err.sum() / loss_mask.sum().clamp_min(1.0)


def magnitude_weight(x0: torch.Tensor, floor: float) -> torch.Tensor:
    """Per-element loss weights that make the magnitude channel's squared error an error in log
    magnitude above `floor` (ours, not published): ((1 + floor) / (x0_mag + floor))² on channel 0,
    1 on the phase channels.

    The error of x̂0 in the compressed magnitude X = |S|^0.25 near X is ≈ (X + floor)·Δlog(X + floor),
    so dividing the squared error by (X + floor)² weighs a 20 dB error in a quiet bin like one in a
    loud bin; the plain loss lets quiet bins (the empty top octave of lossy sources, quiet passages)
    come out tens of dB too loud. The factor is 1 where X = 1."""
    w = torch.ones_like(x0)
    w[:, 0] = ((1.0 + floor) / (x0[:, 0].abs() + floor)) ** 2
    return w
