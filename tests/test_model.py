import json

import pytest
import torch
import yaml

import a2sb
from a2sb.cli import main
from a2sb.errors import A2SBError
from a2sb.network import time_multipliers


def write_released(official, tmp_path):
    """Two Lightning-style checkpoints holding the published vectors' experts."""
    paths = []
    for e in range(2):
        prefix = f"expert{e}."
        state = {k[len(prefix):]: official.get_tensor(k) for k in official.keys() if k.startswith(prefix)}
        state["t_to_emb.multipliers"] = time_multipliers(128)
        path = tmp_path / f"expert{e}.ckpt"
        torch.save({"state_dict": state, "global_step": 1000, "epoch": 3}, path)
        paths.append(str(path))
    return paths


def published_yaml(official, tmp_path):
    """A config laid out like the published YAML (class_path + init_args, rotary_dims included)."""
    args = json.loads(official.metadata()["config"])
    doc = {"model": {"class_path": "Bridge", "init_args": {
        "vf_model": {"class_path": "AttnUNetF", "init_args": args}}}}
    path = tmp_path / "published.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_released_checkpoints_convert_and_sample_like_published(official, tmp_path):
    ckpts = write_released(official, tmp_path)
    cfg = published_yaml(official, tmp_path)
    model = a2sb.load_model(ckpts, config=cfg)
    assert model.t_cutoffs == [0.5] and len(model.experts) == 2
    x, t, y = (official.get_tensor(f"forward.{k}") for k in ("x", "t", "y"))
    with torch.no_grad():
        assert (model.predict_noise(x, t, expert=0) - y).abs().max() <= 1e-4
        # t = [0.9, 0.2]: automatic choice sends the first sample to expert 1, the second to expert 0
        auto = model.predict_noise(x, t)
        assert (auto[1:] - y[1:]).abs().max() <= 1e-4
        assert (auto[:1] - model.predict_noise(x[:1], t[:1], expert=1)).abs().max() <= 1e-6

    out = tmp_path / "converted"
    assert main(["convert-checkpoint", *ckpts, "--config", str(cfg), "-o", str(out)]) == 0
    again = a2sb.load_model(out)
    assert again.t_cutoffs == [0.5] and again.config == model.config
    meta = official.metadata()
    x1, mask, t_steps = (official.get_tensor(f"sample.{k}") for k in ("x1", "mask", "t_steps"))
    final = again.sample(x1, mask, t_steps=t_steps, sampler="ode", window=int(meta["win_length"]),
                         hop=int(meta["hop_length"]))
    assert (final - official.get_tensor("sample.final")).abs().max() <= 1e-4
    info = json.loads((out / "config.json").read_text())
    assert info["stft"]["n_fft"] == 2048 and info["architecture"]["hidden_channels"] == [32, 32, 32, 32, 128, 128]


def test_wrong_architecture_names_the_keys(official, tmp_path):
    ckpts = write_released(official, tmp_path)
    with pytest.raises(A2SBError, match="missing|unexpected|expected"):
        a2sb.load_model(ckpts[:1], config="tiny")
    # the paper configuration (default) does not fit these small weights either
    assert main(["convert-checkpoint", ckpts[0], "-o", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()


def test_missing_sources_are_clear_errors(tmp_path):
    with pytest.raises(A2SBError, match="no such file|not found|does not exist"):
        a2sb.load_model([str(tmp_path / "a.ckpt")])
    with pytest.raises(A2SBError, match="no model"):
        a2sb.load_model(str(tmp_path / "nothing-here"))


def test_save_and_load_round_trip_half(tmp_path):
    model = a2sb.A2SBModel(a2sb.model.network_config("tiny"), t_cutoffs=[0.3, 0.7], default_steps=12)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    a2sb.save_model(model, tmp_path / "m", half=True)
    back = a2sb.load_model(tmp_path / "m")
    assert back.t_cutoffs == [0.3, 0.7] and back.default_steps == 12 and len(back.experts) == 3
    for e1, e2 in zip(model.experts, back.experts):
        for (k, v1), v2 in zip(e1.state_dict().items(), e2.state_dict().values()):
            assert torch.allclose(v1, v2, atol=1e-3 * max(1.0, v1.abs().max().item())), k
    assert [back.expert_index(t) for t in (0.1, 0.3, 0.5, 0.7, 0.99)] == [0, 1, 1, 2, 2]
