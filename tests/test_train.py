"""Training: config, the step (overfitting, NaN skipping), exact resume, DDP, signals, export.

The runs use a micro member of the `tiny` family (3 levels, 1 ResBlock per level) on 3 584-sample
segments (512·7 -> 8 frames, a multiple of 2^3), so a step takes ~0.1 s on one CPU thread; the full
`tiny` network needs 32-frame segments and ~1 s per step here.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from a2sb.errors import A2SBError
from a2sb.network import AttnUNetF
from a2sb.training import trainer as trainer_module
from a2sb.training.config import OptimSection, TrainConfig, TrainerSection, load_config, save_config
from a2sb.training.datasets import TrainingSet
from a2sb.training.distributed import DistInfo, distributed_env
from a2sb.training.export import export_runs
from a2sb.training.loop import run_training
from a2sb.training.pictures import build_batch
from a2sb.training.state import load_checkpoint
from a2sb.training.trainer import EMA, Trainer, init_weights, learning_rate

SR = 44100
SEGMENT = 3584
MICRO = {"preset": "tiny", "n_updown_levels": 3, "hidden_channels": [32, 32, 64, 64], "attention_levels": [2],
         "num_res_blocks": 1}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # Two threads on two shared, busy cores are ~10x slower than one (the threads wait for each other).
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> str:
    """Six 1-s synthetic music files (chords plus a little noise): four train, two validation."""
    folder = tmp_path_factory.mktemp("audio")
    rows = ["split,file_path,duration,estimated_true_sr"]
    t = np.arange(SR) / SR
    for i in range(6):
        rng = np.random.default_rng(i)
        x = sum(0.1 * np.sin(2 * np.pi * f * t) for f in rng.uniform(100, 8000, 6))
        x = x + 0.01 * rng.standard_normal(len(t))
        path = folder / f"song{i}.wav"
        sf.write(path, x.astype(np.float32), SR)
        rows.append(f"{'train' if i < 4 else 'validation'},{path},1.0,44100")
    out = folder / "manifest.csv"
    out.write_text("\n".join(rows) + "\n")
    return str(out)


def micro_dict(manifest, run_dir, **sections) -> dict:
    d = {
        "model": dict(MICRO),
        "data": {"manifests": [manifest], "segment_samples": SEGMENT, "workers": 0},
        "optim": {"lr": 1e-3},
        "trainer": {"run_dir": str(run_dir), "batch_size": 2, "precision": "fp32", "device": "cpu",
                    "log_every": 1, "checkpoint_every": 1000, "keep_checkpoints": False, "tensorboard": False},
        "validation": {"every": 0, "sample_every": 0},
    }
    for name, values in sections.items():
        d.setdefault(name, {}).update(values)
    return d


def micro_config(manifest, run_dir, **sections) -> TrainConfig:
    return load_config(micro_dict(manifest, run_dir, **sections))


def train_losses(run_dir) -> dict[int, float]:
    records = [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in records if r["kind"] == "train"}


def records(run_dir, kind):
    return [r for r in map(json.loads, (Path(run_dir) / "metrics.jsonl").read_text().splitlines())
            if r["kind"] == kind]


# ------------------------------------------------------------------------------------------ config

@pytest.mark.parametrize("name", ["pretrain", "t_finetune_2split_0.0_0.5", "t_finetune_2split_0.5_1.0", "tiny"])
def test_bundled_configs_load(name):
    config = load_config(name)
    assert config.data.segment_samples in (130560, 15872)
    if name == "pretrain":
        assert (config.optim.lr, config.optim.grad_clip, config.trainer.precision) == (8e-5, 0.5, "bf16")
        assert (config.bridge.t_min, config.bridge.t_max, config.trainer.batch_size) == (0.0, 1.0, 10)
    if name.startswith("t_finetune"):
        assert config.trainer.precision == "fp32" and config.trainer.batch_size == 4
        assert config.trainer.init_from
        assert f"{config.bridge.t_min}_{config.bridge.t_max}" in name


def test_defaults_are_the_published_ones(manifest, tmp_path):
    config = micro_config(manifest, tmp_path)
    o = OptimSection()
    assert (o.lr, o.weight_decay, tuple(o.betas), o.eps, o.grad_clip, o.ema_decay) == (8e-5, 1e-8, (0.9, 0.999),
                                                                                      1e-8, 0.5, 0.0)
    assert TrainerSection().precision == "auto"  # the published bf16 on CUDA, float32 on a CPU
    trainer = Trainer(load_config(micro_dict(manifest, tmp_path, optim={"lr": 8e-5})))
    group = trainer.optimizer.param_groups[0]
    assert isinstance(trainer.optimizer, torch.optim.RAdam) and group["decoupled_weight_decay"]
    assert (group["lr"], group["weight_decay"], group["betas"], group["eps"]) == (8e-5, 1e-8, (0.9, 0.999), 1e-8)
    # the rotary frequencies are frozen parameters: not optimised
    assert sum(p.numel() for p in trainer.params) < sum(p.numel() for p in trainer.module.parameters())
    assert config.to_dict()["model"] == MICRO


def test_precision_auto_is_float32_on_cpu_and_bf16_when_asked(manifest, tmp_path):
    auto = Trainer(load_config(micro_dict(manifest, tmp_path, trainer={"precision": "auto"})))
    bf16 = Trainer(load_config(micro_dict(manifest, tmp_path, trainer={"precision": "bf16"})))
    assert auto.autocast_dtype is None and bf16.autocast_dtype == torch.bfloat16
    with bf16.autocast():
        out = bf16.module(torch.zeros(1, 3, 32, 16), torch.full((1,), 0.5))
    assert out.dtype == torch.bfloat16


def test_config_errors_and_overrides(manifest, tmp_path):
    base = micro_dict(manifest, tmp_path)
    with pytest.raises(A2SBError, match="unknown key.*optim.*lrr"):
        load_config({**base, "optim": {"lrr": 1}})
    with pytest.raises(A2SBError, match="unknown config section"):
        load_config({**base, "optimizer": {}})
    with pytest.raises(A2SBError, match="unknown key.*model"):
        load_config({**base, "model": {"preset": "tiny", "width": 3}})
    with pytest.raises(A2SBError, match="unknown key.*'data'.*segment"):
        load_config({**base, "data": {"manifests": [manifest], "segment": 1}})
    with pytest.raises(A2SBError, match="data.p_bwe: expected float"):
        load_config({**base, "data": {"manifests": [manifest], "p_bwe": "often"}})
    with pytest.raises(A2SBError, match="segment_samples=16384 gives 33 frames.*15872"):
        load_config({**base, "model": {"preset": "tiny"}, "data": {"segment_samples": 16384}})
    with pytest.raises(A2SBError, match="t_min < t_max"):
        load_config({**base, "bridge": {"t_min": 0.5, "t_max": 0.5}})
    with pytest.raises(A2SBError, match="expected int"):
        load_config(base, ["trainer.batch_size=2.5"])
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(base))
    config = load_config(path, ["optim.lr=3e-4", "bridge.t_max=0.5", "trainer.max_steps=7"])
    assert config.optim.lr == 3e-4 and isinstance(config.optim.lr, float)  # YAML reads 3e-4 as a string
    assert config.bridge.t_max == 0.5 and config.trainer.max_steps == 7
    # a saved config reloads to the same thing
    save_config(config, tmp_path / "again.yaml")
    assert load_config(tmp_path / "again.yaml").to_dict() == config.to_dict()


def test_distributed_env():
    assert distributed_env({}) == DistInfo(1, 0, 0)
    assert distributed_env({"WORLD_SIZE": "8", "RANK": "3", "LOCAL_RANK": "3"}) == DistInfo(8, 3, 3)
    slurm = {"SLURM_NTASKS": "16", "SLURM_PROCID": "9", "SLURM_LOCALID": "1"}
    assert distributed_env(slurm) == DistInfo(16, 9, 1)
    # torchrun inside an srun allocation: torchrun's variables win
    assert distributed_env({**slurm, "WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"}).world_size == 2


# ------------------------------------------------------------------------------------------ the step

def _fixed_batch(config, seed=0):
    from torch.utils.data import default_collate

    ds = TrainingSet(config.data, seed=0)
    batch = default_collate([ds[i] for i in range(2)])
    return build_batch(batch, generator=torch.Generator().manual_seed(seed))


def test_loss_decreases_when_overfitting_one_batch(manifest, tmp_path):
    config = micro_config(manifest, tmp_path, model={"dropout": 0.0}, bridge={"t_min": 0.3, "t_max": 0.7},
                          optim={"lr": 1e-2})
    trainer = Trainer(config)
    pictures = _fixed_batch(config)
    # step=0 every time: the same t, bridge noise and dropout, so it is one fixed regression problem
    losses = [trainer.train_step([pictures], step=0).loss for _ in range(50)]
    assert all(np.isfinite(losses))
    assert losses[-1] < 0.5 * losses[0], losses[::10]


def test_magnitude_weight_from_the_prediction(manifest, tmp_path):
    """The weight comes from the network's detached clean estimate: a different loss from the target's,
    the same gradient path (the weight itself carries no gradient)."""
    losses = {}
    for source in ("target", "prediction"):
        config = micro_config(manifest, tmp_path / source, model={"dropout": 0.0},
                              bridge={"magnitude_floor": 0.1, "magnitude_weight_from": source})
        trainer = Trainer(config)
        pictures = _fixed_batch(config)
        t = torch.full((pictures["x0"].shape[0],), 0.5, dtype=torch.float64)
        noise = torch.zeros_like(pictures["x0"])
        loss = trainer.loss(pictures, t, noise)
        loss.backward()
        assert all(p.grad is None or torch.isfinite(p.grad).all() for p in trainer.params)
        losses[source] = loss.item()
    assert np.isfinite(list(losses.values())).all() and losses["target"] != losses["prediction"]
    with pytest.raises(A2SBError, match="magnitude_weight_from"):
        micro_config(manifest, tmp_path, bridge={"magnitude_weight_from": "clean"})


def test_nan_step_is_skipped_without_touching_weights(manifest, tmp_path, monkeypatch):
    trainer = Trainer(micro_config(manifest, tmp_path))
    pictures = _fixed_batch(trainer.config)
    trainer.train_step([pictures], step=0)
    before = {k: v.clone() for k, v in trainer.module.state_dict().items()}
    opt_steps = [float(s["step"]) for s in trainer.optimizer.state_dict()["state"].values()]
    real = trainer_module.masked_loss
    monkeypatch.setattr(trainer_module, "masked_loss", lambda p, t, m, w=None: real(p, t, m, w) * float("nan"))
    result = trainer.train_step([pictures], step=1)
    assert result.skipped and not np.isfinite(result.loss)
    after = trainer.module.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert [float(s["step"]) for s in trainer.optimizer.state_dict()["state"].values()] == opt_steps
    monkeypatch.setattr(trainer_module, "masked_loss", real)
    assert not trainer.train_step([pictures], step=2).skipped


def test_too_many_non_finite_steps_stop_the_run(manifest, tmp_path, monkeypatch):
    real = trainer_module.masked_loss
    calls = []

    def sometimes_nan(p, t, m, w=None):
        calls.append(1)
        return real(p, t, m, w) * (float("nan") if len(calls) >= 3 else 1.0)  # steps 3, 4, 5, ... fail

    monkeypatch.setattr(trainer_module, "masked_loss", sometimes_nan)
    config = micro_config(manifest, tmp_path / "run", trainer={"max_bad_steps": 3, "log_every": 100})
    with pytest.raises(A2SBError, match=r"3 steps in a row \(3\.\.5\).*after step 2"):
        run_training(config, max_steps=50)
    last = records(tmp_path / "run", "train")[-1]
    assert last["step"] == 5 and last["skipped_steps"] == 3


# ------------------------------------------------------------------------------------------ runs

@pytest.fixture(scope="module")
def full_run(manifest, tmp_path_factory):
    """6 steps without interruption, with validation, restorations and EMA (dropout on, fp32 CPU)."""
    run_dir = tmp_path_factory.mktemp("full")
    extra = dict(optim={"ema_decay": 0.9, "lr_decay_start": 2, "lr_decay_steps": 3, "lr_final": 1e-4},
                 validation={"every": 3, "sample_every": 6, "max_items": 2, "sample_clips": 1, "sample_steps": 3,
                             "batch_size": 2},
                 trainer={"checkpoint_every": 3, "keep_checkpoints": True, "tensorboard": True})
    d = micro_dict(manifest, run_dir, **extra)
    result = run_training(load_config(d), max_steps=6)
    assert result["step"] == 6 and not result["stopped"]
    return run_dir, d


def test_resume_reproduces_the_uninterrupted_run(full_run, tmp_path):
    run_dir, d = full_run
    d = json.loads(json.dumps(d))
    d["trainer"]["run_dir"] = str(tmp_path)
    run_training(load_config(d), max_steps=3)
    with pytest.raises(A2SBError, match="already holds a run"):
        run_training(load_config(d), max_steps=6)
    run_training(load_config(d), resume=True, max_steps=6)
    full, resumed = train_losses(run_dir), train_losses(tmp_path)
    assert sorted(full) == sorted(resumed) == [1, 2, 3, 4, 5, 6]
    assert all(resumed[s] == full[s] for s in full), (full, resumed)  # bit-identical
    a, b = load_checkpoint(run_dir), load_checkpoint(tmp_path)
    assert a["step"] == b["step"] == 6
    for key in ("model", "ema"):
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key])
    assert [r["loss_t0.5"] for r in records(run_dir, "val")] == [r["loss_t0.5"] for r in records(tmp_path, "val")]


def test_run_outputs(full_run):
    run_dir, _ = full_run
    state = load_checkpoint(run_dir)
    assert set(state) >= {"model", "optimizer", "ema", "step", "rng", "config", "counters"}
    assert torch.is_tensor(state["rng"]["torch"]) and torch.is_tensor(state["rng"]["numpy"]["keys"])
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == [
        "last.pt", "step_00000003.pt", "step_00000006.pt"]
    val = records(run_dir, "val")
    assert [r["step"] for r in val] == [3, 6]
    assert set(val[0]) >= {"loss_t0.01", "loss_t0.25", "loss_t0.5", "loss_t0.75", "loss_t0.99"}
    sample = records(run_dir, "val_sample")
    assert len(sample) == 1 and set(sample[0]) >= {"lsd", "sispec", "log_sispec", "degraded_lsd"}
    assert (run_dir / "samples" / "step00000006_clip0.wav").exists()
    # cosine decay from 1e-3 after step index 2 to 1e-4 at index 5: the lr each logged step used
    lrs = [r["lr"] for r in records(run_dir, "train")]
    expected = [1e-3, 1e-3, 1e-3, 1e-4 + 9e-4 * 0.75, 1e-4 + 9e-4 * 0.25, 1e-4]
    assert lrs == pytest.approx(expected, rel=1e-9)
    train_rec = records(run_dir, "train")[-1]
    assert set(train_rec) >= {"loss", "grad_norm", "lr", "samples_per_s", "skipped_steps", "bad_files"}
    assert list((run_dir / "tensorboard").iterdir())
    assert load_config(run_dir / "config.yaml").optim.ema_decay == 0.9


def test_init_from_run_and_export(full_run, tmp_path):
    import a2sb

    run_dir, d = full_run
    experts = []
    for lo, hi in ((0.5, 1.0), (0.0, 0.5)):  # given out of order: export sorts them by t range
        e = json.loads(json.dumps(d))
        e["bridge"] = {"t_min": lo, "t_max": hi}
        e["optim"]["ema_decay"] = 0.0
        e["trainer"].update(init_from=str(run_dir), init_optimizer=True, tensorboard=False)
        e["validation"] = {"every": 0, "sample_every": 0}
        target = tmp_path / f"expert_{lo}"
        config = load_config(e)
        trainer = Trainer(config)
        init_weights(trainer, str(run_dir), optimizer=True)
        source = load_checkpoint(run_dir)
        assert all(torch.equal(v, source["model"][k]) for k, v in trainer.net.state_dict().items())
        run_training(config, target, max_steps=1)
        experts.append(str(target))
    from a2sb.cli import main

    out = tmp_path / "model"
    assert main(["export", *experts, "-o", str(out), "--half", "--steps", "4"]) == 0
    model = a2sb.load_model(out)
    assert model.t_cutoffs == [0.5] and len(model.experts) == 2 and model.default_steps == 4
    # provenance names the checkpoints without the machine's absolute layout (tmp_path is outside cwd)
    assert [e["checkpoint"] for e in model.provenance["experts"]] == ["last.pt", "last.pt"]
    assert [e["t_range"] for e in model.provenance["experts"]] == [[0.0, 0.5], [0.5, 1.0]]
    low = load_checkpoint(experts[1])["model"]
    assert torch.allclose(model.experts[0].state_dict()["input_projection.weight"],
                          low["input_projection.weight"], atol=1e-3)  # float16 storage
    x1 = torch.randn(1, 3, 1024, 8)
    mask = torch.zeros(1, 1, 1024, 8)
    mask[..., 700:, :] = 1
    out_picture = model.sample(x1, mask, window=8, hop=8, seed=0)
    assert out_picture.shape == x1.shape and torch.isfinite(out_picture).all()
    assert torch.equal(out_picture[..., :700, :], x1[..., :700, :])
    # one run with EMA weights; --ema on a run without EMA is an error
    export_runs([run_dir], tmp_path / "ema_model", ema=True, band_level="cap", stereo_mix=0.5)
    exported = a2sb.load_model(tmp_path / "ema_model")
    assert len(exported.experts) == 1
    assert (exported.default_band_level, exported.prior.stereo_mix) == ("cap", 0.5)
    with pytest.raises(A2SBError, match="no EMA"):
        export_runs([experts[0]], tmp_path / "x", ema=True)
    # the band gain table from the command line (experiments/fit_band_gain.py writes it); a bad file: exit 2
    (tmp_path / "gain.json").write_text(json.dumps({"cutoffs_hz": [4000, 8000], "octaves_db": [[0.5, 2], [4.5]]}))
    assert main(["export", str(run_dir), "-o", str(tmp_path / "gained"), "--band-level", "cap",
                 "--band-gain", str(tmp_path / "gain.json")]) == 0
    assert a2sb.load_model(tmp_path / "gained").band_gain == {"cutoffs_hz": [4000.0, 8000.0],
                                                             "octaves_db": [[0.5, 2.0], [4.5]]}
    (tmp_path / "bad.json").write_text("{not json")
    assert main(["export", str(run_dir), "-o", str(tmp_path / "bad"), "--band-gain", str(tmp_path / "bad.json")]) == 2
    assert not (tmp_path / "bad").exists()


# ------------------------------------------------------------------------------------------ processes

def _subprocess_env():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.pop("WORLD_SIZE", None)
    return env


def test_ddp_two_processes_keep_identical_weights(manifest, tmp_path):
    cfg = tmp_path / "ddp.yaml"
    cfg.write_text(yaml.safe_dump(micro_dict(manifest, tmp_path / "run", trainer={"log_every": 1})))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "a2sb.train", str(cfg), "--max-steps", "3"]
    proc = subprocess.run(cmd, env=_subprocess_env(), capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    state = load_checkpoint(tmp_path / "run")
    assert state["world_size"] == 2 and state["step"] == 3
    fingerprints = state["replica_fingerprints"]
    assert fingerprints.shape[0] == 2 and torch.equal(fingerprints[0], fingerprints[1])
    assert "x 2 processes, 4 segments per step" in proc.stdout
    assert sorted(train_losses(tmp_path / "run")) == [1, 2, 3]


def test_ddp_rank_error_is_one_line_and_fails_the_job(manifest, tmp_path):
    # the ranks end with os._exit (see a2sb.cli.training._train_command): an error must still reach the launcher
    cfg = tmp_path / "ddp.yaml"
    cfg.write_text(yaml.safe_dump(micro_dict(manifest, tmp_path / "run")))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "a2sb.train", str(cfg), "--resume", "--max-steps", "1"]
    proc = subprocess.run(cmd, env=_subprocess_env(), capture_output=True, text=True, timeout=240)
    assert proc.returncode != 0
    assert proc.stderr.count("a2sb: error: --resume: no checkpoint at") == 2, proc.stderr[-3000:]
    assert "exitcode  : 2" in proc.stderr and "SIGABRT" not in proc.stderr


def test_sigterm_saves_a_checkpoint_and_resume_continues(manifest, tmp_path):
    run_dir = tmp_path / "run"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(micro_dict(manifest, run_dir)))
    proc = subprocess.Popen([sys.executable, "-m", "a2sb.train", str(cfg), "--max-steps", "100000"],
                            env=_subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = run_dir / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 2:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    assert "stopped by SIGTERM" in out
    state = load_checkpoint(run_dir)
    stopped_at = state["step"]
    assert stopped_at >= 2 and max(train_losses(run_dir)) == stopped_at
    result = run_training(load_config(cfg), resume=True, max_steps=stopped_at + 1)
    assert result["step"] == stopped_at + 1
    assert sorted(train_losses(run_dir))[-1] == stopped_at + 1


def test_learning_rate_schedule():
    o = OptimSection(lr=1e-3)
    assert [learning_rate(o, s) for s in (0, 10**6)] == [1e-3, 1e-3]  # constant by default
    o = OptimSection(lr=1e-3, lr_decay_start=100, lr_decay_steps=50, lr_final=1e-5)
    assert learning_rate(o, 100) == 1e-3
    assert learning_rate(o, 125) == pytest.approx((1e-3 + 1e-5) / 2, rel=1e-12)
    assert learning_rate(o, 150) == pytest.approx(1e-5, rel=1e-12)
    assert learning_rate(o, 10**6) == pytest.approx(1e-5, rel=1e-12)
    with pytest.raises(A2SBError, match="lr_decay"):
        load_config({"optim": {"lr_decay_start": 10, "lr_decay_steps": 0}})


def test_ema_warmup_forgets_the_initial_weights():
    """decay min(d, (1+n)/(10+n)): the first update keeps 10 % of the old value, later ones approach d."""
    module = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        module.weight.fill_(0.0)
    ema = EMA(module, decay=0.999)
    with torch.no_grad():
        module.weight.fill_(1.0)
    ema.update(module, 0)  # decay 0.1
    assert ema.state["weight"].item() == pytest.approx(0.9, abs=1e-6)
    assert ema.decay_at(90) == pytest.approx(91 / 100)
    assert ema.decay_at(10**6) == pytest.approx(0.999)
    # 1000 steps from an all-zero start: the warm-up leaves ~1 % of the start, a plain EMA 37 %
    plain = EMA(torch.nn.Linear(1, 1, bias=False), decay=0.999, warmup=False)
    plain.state["weight"].fill_(0.0)
    ema.state["weight"].fill_(0.0)
    for n in range(1000):
        ema.update(module, n)
        plain.update(module, n)
    assert 1 - ema.state["weight"].item() < 0.02
    assert 1 - plain.state["weight"].item() == pytest.approx(0.999**1000, rel=1e-3)


def test_training_and_sampling_share_the_noise_predictor(manifest, tmp_path):
    """The trainer's network is a NoisePredictor (the wrapper A2SBModel restores with): its checkpoint
    weights and EMA hold the network's own keys, and an EMA written under the old wrapper's `net.` keys
    still loads."""
    from a2sb.model import A2SBModel
    from a2sb.network import NoisePredictor

    config = micro_config(manifest, tmp_path, optim={"ema_decay": 0.9})
    trainer = Trainer(config)
    assert isinstance(trainer.module, NoisePredictor) and issubclass(A2SBModel, NoisePredictor)
    state = trainer.state_dict()
    assert set(state["model"]) == set(state["ema"]) == set(AttnUNetF(config.model.network()).state_dict())
    x = torch.randn(2, 3, 1024, 8)
    t = torch.tensor([0.2, 0.7], dtype=torch.float64)
    model = A2SBModel(config.model.network(), [trainer.net])
    with torch.no_grad():
        assert torch.equal(trainer.module(x, t), model.predict_noise(x, t))
    shifted = {k: v + 1 if v.is_floating_point() else v for k, v in state["ema"].items()}
    other = Trainer(config)
    other.load_state_dict({**state, "ema": {f"net.{k}": v for k, v in shifted.items()}})
    assert all(torch.equal(other.ema.state[k], v) for k, v in shifted.items())
