import pytest
import torch

from a2sb.bridge import BridgeSchedule, masked_loss, predict_x0, q_sample, training_target

PUBLISHED_TABLE = {  # t: (sigma_f, sigma_b) of the published schedule, beta_max = 1 (docs/method.md §Bridge)
    0.0: (0.0, 0.0), 0.05: (0.0064550, 0.0064534), 0.1: (0.0182574, 0.0182209), 0.25: (0.0721688, 0.0698771),
    0.5: (0.2041241, 0.1443376), 0.75: (0.2795085, 0.0698771), 0.9: (0.2880972, 0.0182209),
    0.95: (0.2886029, 0.0064534), 1.0: (0.2886751, 0.0),
}


def test_schedule_table():
    s = BridgeSchedule()
    for t, (f, b) in PUBLISHED_TABLE.items():
        assert s.std_fwd(t).item() == pytest.approx(f, abs=1e-7)
        assert s.std_sb(t).item() == pytest.approx(b, abs=1e-7)
    t = torch.linspace(0, 1, 101, dtype=torch.float64)
    assert torch.allclose(s.std_fwd(t) ** 2 + s.std_rev(t) ** 2, torch.full_like(t, 1 / 12), atol=1e-15)
    # beta is the derivative of the integral on both branches
    h = 1e-6
    for tt, beta in ((0.3, 0.09), (0.8, 0.04)):
        assert ((s.integral(tt + h) - s.integral(tt - h)) / (2 * h)).item() == pytest.approx(beta, rel=1e-6)


def test_schedule_matches_published_vectors(official):
    s = BridgeSchedule(float(official.metadata()["beta_max"]))
    t = official.get_tensor("schedule.t")
    for name, fn in (("std_fwd", s.std_fwd), ("std_rev", s.std_rev), ("std_sb", s.std_sb)):
        assert (fn(t).float() - official.get_tensor(f"schedule.{name}")).abs().max() <= 1e-6


def test_bridge_marginal_endpoints_and_moments():
    s = BridgeSchedule()
    x0, x1 = torch.zeros(4000, 8), torch.ones(4000, 8)
    assert torch.equal(q_sample(s, x0, x1, torch.zeros(4000)), x0)
    assert torch.equal(q_sample(s, x0, x1, torch.ones(4000)), x1)
    t = torch.full((4000,), 0.3)
    xt = q_sample(s, x0, x1, t)
    a, b, sigma = s.marginal(0.3)
    assert xt.mean().item() == pytest.approx(b.item(), abs=3 * sigma.item() / 180)
    assert xt.std().item() == pytest.approx(sigma.item(), rel=0.03)
    assert a.item() + b.item() == pytest.approx(1.0)
    assert torch.allclose(q_sample(s, x0, x1, t, ot_ode=True), torch.full_like(x0, b.item()))


def test_target_inverts_to_x0():
    s = BridgeSchedule()
    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(3, 3, 8, 8, generator=g), torch.randn(3, 3, 8, 8, generator=g)
    t = torch.tensor([0.1, 0.5, 0.9])
    xt = q_sample(s, x0, x1, t)
    assert torch.allclose(predict_x0(s, xt, t, training_target(s, xt, x0, t)), x0, atol=1e-5)


def test_masked_loss_only_counts_the_hole():
    pred, target = torch.zeros(2, 3, 4, 4), torch.ones(2, 3, 4, 4)
    mask = torch.zeros(2, 1, 4, 4)
    mask[0, :, :2] = 1
    target[1] = 100.0  # outside the mask: ignored
    assert masked_loss(pred, target, mask).item() == pytest.approx(1.0)
    target[0, 0, 0, 0] = 3.0
    # sum over the whole batch divided by the mask sum over all 3 channels (24 elements)
    assert masked_loss(pred, target, mask).item() == pytest.approx((23 + 9) / 24)


def test_magnitude_weight_turns_the_error_into_a_log_magnitude_error():
    """With the weight, a 10 % magnitude error costs about the same in a quiet and a loud bin."""
    from a2sb.bridge import magnitude_weight

    floor = 0.05
    x0 = torch.tensor([0.02, 1.0, 3.0]).reshape(1, 1, 3, 1).expand(1, 3, 3, 1).clone()
    w = magnitude_weight(x0, floor)
    assert torch.equal(w[:, 1:], torch.ones_like(w[:, 1:]))  # phase channels unweighted
    assert w[0, 0, 1, 0].item() == pytest.approx(1.0)  # X = 1 keeps weight 1
    assert w[0, 0, :, 0].tolist() == pytest.approx([(1.05 / 0.07) ** 2, 1.0, (1.05 / 3.05) ** 2])
    # a relative error r in (X + floor): weighted squared error = r^2 (1 + floor)^2 whatever X
    r = 0.1
    err = r * (x0[:, :1] + floor)
    weighted = (err**2 * w[:, :1]).flatten()
    assert torch.allclose(weighted, torch.full_like(weighted, (r * 1.05) ** 2))
    # masked_loss applies it inside the mask and keeps the mask-sum normalisation
    pred, target = torch.zeros(1, 3, 3, 1), torch.ones(1, 3, 3, 1)
    mask = torch.tensor([1.0, 1.0, 0.0]).reshape(1, 1, 3, 1)
    # rows 0 and 1 are inside the mask (3 channels each): weights w00 + w01 + 4, over a mask sum of 6
    assert masked_loss(pred, target, mask, w).item() == pytest.approx(
        ((w[0, 0, 0, 0] + w[0, 0, 1, 0] + 4) / 6).item())
    assert masked_loss(pred, target, mask).item() == pytest.approx(1.0)


def test_weighting_by_the_prediction_keeps_the_mean_where_weighting_by_the_target_is_biased():
    """Half the targets quiet (0.03), half loud (0.3): a level the input cannot tell. Weighted by the
    target, the loss's minimiser sinks towards the quiet one; weighted by the (detached) prediction, its
    fixed point is the plain mean, so the estimate's level is not biased."""
    from a2sb.bridge import magnitude_weight

    floor = 0.1
    targets = torch.tensor([0.03, 0.3]).reshape(2, 1, 1, 1).expand(2, 3, 1, 1)
    by_target = magnitude_weight(targets, floor)[:, 0].flatten()
    biased = float((by_target * targets[:, 0].flatten()).sum() / by_target.sum())
    p = torch.tensor(0.3)
    for _ in range(200):  # the fixed point of training with the weight from the prediction itself
        w = magnitude_weight(p.detach().expand(1, 3, 1, 1), floor)[0, 0, 0, 0]
        p = p - 0.5 * (w * 2 * (p - targets[:, 0].flatten())).mean() / w
    assert float(p) == pytest.approx(0.165, abs=1e-4)
    assert biased < 0.1  # the target weighting's optimum: more than 10 dB of |S| too quiet
