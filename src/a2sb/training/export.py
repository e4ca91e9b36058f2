"""`export_runs`: a model folder (for `a2sb restore --model` and a2sb.load_model) from one training run
or several expert runs, with the restoration defaults read from the runs' configs."""

from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path

from ..errors import A2SBError
from ..network import AttnUNetF
from .config import TrainConfig
from .state import load_checkpoint
from .trainer import network_keys


def export_runs(runs: list[str | os.PathLike], output: str | os.PathLike, t_cutoffs: list[float] | None = None,
                ema: bool = False, half: bool = False, steps: int | None = None, sampler: str = "sde",
                stereo_mix: float = 0.0, band_level: str = "off", band_level_offsets: dict | None = None,
                band_gain: dict | None = None):
    """Build an inference bundle from one run or several expert runs (model folder for load_model).
    Without `t_cutoffs` the experts are ordered by their training t ranges and split where they meet.
    `stereo_mix` (dsp prior, restoration only: training items are mono) goes into the model's prior;
    `band_level` is the model's default level correction of bandwidth extension (a2sb.levels), and
    `band_level_offsets` band replication's measured level error it takes off (experiments/level_predictability.py),
    `band_gain` the model's own measured level deficit it adds back (experiments/fit_band_gain.py)."""
    from ..model import PUBLISHED_STEPS, A2SBModel, save_model

    if not runs:
        raise A2SBError("no runs given")
    states = [load_checkpoint(r) for r in runs]
    configs = [run_config(s) for s in states]
    nets = [c.model.network() for c in configs]
    if any(n != nets[0] for n in nets[1:]):
        raise A2SBError("the runs use different network configurations; experts must share one")
    ranges = [(c.bridge.t_min, c.bridge.t_max) for c in configs]
    betas = {c.bridge.beta_max for c in configs}
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
            weights = network_keys(state["ema"])
        net = AttnUNetF(nets[0])
        net.load_state_dict(weights)
        experts.append(net.eval())
        provenance.append({"checkpoint": _portable_path(state["path"]), "step": int(state["step"]),
                           "t_range": list(ranges[i]), "ema": ema})
    priors = {c.data.x1_prior() for c in configs}
    if len(priors) != 1:
        raise A2SBError(f"the runs fill x1 differently: {sorted(map(repr, priors))}; experts must share one")
    # restore with windows as long as the training segments (rotary positions are relative to the map)
    frames = configs[0].data.frames
    window = min(256, frames - frames % 2 ** nets[0].n_updown_levels)
    model = A2SBModel(nets[0], experts, t_cutoffs=t_cutoffs, beta_max=betas.pop(),
                      default_steps=steps or PUBLISHED_STEPS, default_window=window, default_hop=window // 2,
                      default_sampler=sampler, provenance={"source": "a2sb train", "experts": provenance},
                      default_band_level=band_level, band_level_offsets=band_level_offsets, band_gain=band_gain,
                      prior=dataclasses.replace(priors.pop(), stereo_mix=stereo_mix))
    save_model(model, output, half=half)
    return model


def run_config(state: dict) -> TrainConfig:
    """The typed config of a training checkpoint (its defaults fill what an older run did not write)."""
    try:
        return TrainConfig.from_dict(state["config"])
    except A2SBError as err:
        raise A2SBError(f"{state['path']}: its config does not load: {err}") from None


def _portable_path(path) -> str:
    """A checkpoint path fit to ship in a model's provenance: relative to the working directory when it
    lies below it (e.g. runs/bundled/checkpoints/last.pt), else only its file name, never the machine's
    absolute layout."""
    rel = os.path.relpath(os.path.abspath(path))
    return Path(rel).as_posix() if not rel.startswith("..") else os.path.basename(str(path))
