"""`a2sb data manifest`, `a2sb train` and `a2sb export` (the code: a2sb.training).

Torch and the training package are imported inside the command functions: building the parser
(`a2sb --help`) stays fast."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ..errors import A2SBError, print_error
from .args import BAND_LEVEL_CHOICES, numbers, split_fractions


def add_parser(sub) -> None:
    _add_data(sub)
    _add_train_and_export(sub)


def _add_data(subparsers) -> None:
    parser = subparsers.add_parser("data", help="prepare training data (manifests)",
                                   description="Prepare training data.")
    actions = parser.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    m = actions.add_parser(
        "manifest",
        help="scan folders of audio and write a training manifest (CSV)",
        description="Scan DIR... for audio files and write split,file_path,duration,estimated_true_sr. "
        "Splits are decided by a hash of each file's (or folder's) relative path, so they are stable "
        "when files are added.",
    )
    m.add_argument("dirs", nargs="+", metavar="DIR")
    m.add_argument("-o", "--output", required=True, metavar="CSV")
    m.add_argument("--by", choices=["file", "folder"], default="file",
                   help="split unit: single files, or whole folders kept together (default file)")
    m.add_argument("--seed", type=int, default=0, help="seed of the split hash (default 0)")
    m.add_argument("--split", type=split_fractions, default=(0.9, 0.05, 0.05), metavar="TR,VA,TE",
                   help="train,validation,test fractions (default 0.9,0.05,0.05)")
    m.add_argument("--no-bandwidth", action="store_true",
                   help="do not estimate each file's true bandwidth (faster: headers only)")
    m.add_argument("--workers", type=int, default=1, help="processes for reading files (default 1)")
    m.set_defaults(func=_manifest_command)


def _manifest_command(args) -> int:
    from ..training.manifests import write_manifest

    write_manifest(args.dirs, args.output, split_fractions=args.split, by=args.by, seed=args.seed,
                   estimate_bandwidth=not args.no_bandwidth, workers=args.workers)
    return 0


def _add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", metavar="CONFIG",
                   help="training config (YAML) or the name of a bundled one (pretrain, tiny, ...); "
                        "with --resume it defaults to RUN_DIR/config.yaml")
    p.add_argument("--run-dir", metavar="DIR", help="run folder (default: trainer.run_dir of the config)")
    p.add_argument("--resume", action="store_true", help="continue the run in the run folder from checkpoints/last.pt")
    p.add_argument("--max-steps", type=int, metavar="N", help="stop after N optimiser steps in total")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="override a config value, e.g. --set optim.lr=1e-4 (repeatable)")


def _train_command(args) -> int:
    from ..training import distributed_env, load_config, run_training

    source = args.config
    if source is None:
        if not (args.resume and args.run_dir):
            raise A2SBError("give a CONFIG (or --resume --run-dir DIR to reuse the run's config.yaml)")
        source = Path(args.run_dir) / "config.yaml"
    config = load_config(source, args.overrides)
    if not distributed_env().enabled:
        run_training(config, args.run_dir, resume=args.resume, max_steps=args.max_steps)
        return 0
    # A DDP rank leaves without the interpreter's shutdown: after a clean run and destroy_process_group,
    # torch's gloo backend sometimes aborts in its C++ static destructors ("terminate called without an
    # active exception", SIGABRT; experiments/ddp_exit.py: 6 of 48 two-process runs, 0 with os._exit): the job fails.
    # Everything the run writes is closed by now (checkpoint, metrics, TensorBoard, data workers).
    code = 0
    try:
        run_training(config, args.run_dir, resume=args.resume, max_steps=args.max_steps)
    except A2SBError as err:
        code = print_error(err)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _export_command(args) -> int:
    from ..training import export_runs

    model = export_runs(args.runs, args.output, t_cutoffs=args.t_cutoffs, ema=args.ema, half=args.half,
                        steps=args.steps, sampler=args.sampler, stereo_mix=args.stereo_mix,
                        band_level=args.band_level,
                        band_level_offsets=_read_table(args.band_level_offsets, "band level offsets"),
                        band_gain=_read_table(args.band_gain, "band gain"))
    print(f"wrote {args.output}: {len(model.experts)} expert(s), t cutoffs {model.t_cutoffs}")
    return 0


def _read_table(path: str | None, name: str) -> dict | None:
    if path is None:
        return None
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise A2SBError(f"cannot read {name} {path}: {err}") from None


def _add_train_and_export(subparsers) -> None:
    p = subparsers.add_parser("train", help="train a model (one process, one GPU, or DDP under torchrun)",
                              description="Train an A2SB bridge model from a YAML config. Under torchrun (or srun "
                                          "with one task per GPU) every process runs this command; they form "
                                          "a DDP job by themselves.")
    _add_train_arguments(p)
    p.set_defaults(func=_train_command)
    e = subparsers.add_parser("export", help="build a model folder from training runs",
                              description="Build an inference model folder (for `a2sb restore --model` and "
                                          "a2sb.load_model) from one run, or several expert runs.")
    e.add_argument("runs", nargs="+", metavar="RUN", help="run folders or training checkpoints (.pt)")
    e.add_argument("-o", "--output", required=True, metavar="MODEL_DIR")
    e.add_argument("--t-cutoffs", type=numbers, metavar="T[,T...]",
                   help="expert boundaries, runs taken in the given order (default: from the runs' t ranges)")
    e.add_argument("--ema", action="store_true", help="export the EMA weights")
    e.add_argument("--half", action="store_true", help="store float16 weights (half the size)")
    e.add_argument("--steps", type=int, metavar="N", help="default number of sampling steps of the model")
    e.add_argument("--sampler", choices=("sde", "ode"), default="sde", help="default sampler of the model")
    e.add_argument("--stereo-mix", type=float, default=0.0, metavar="M",
                   help="dsp prior: share of the mid in both channels' band replication (0..1, default 0)")
    e.add_argument("--band-level", choices=BAND_LEVEL_CHOICES, default="off",
                   help="the model's default level correction of bandwidth extension (default off)")
    e.add_argument("--band-level-offsets", metavar="JSON",
                   help="band replication's level error per octave, taken off the band level reference "
                        "(written by experiments/level_predictability.py --fit)")
    e.add_argument("--band-gain", metavar="JSON",
                   help="the model's own level deficit per octave above a cutoff, added to the band it "
                        "regenerates when the band level is cap or match (written by experiments/fit_band_gain.py)")
    e.set_defaults(func=_export_command)


def main(argv: list[str] | None = None) -> int:
    """`python -m a2sb.train CONFIG [...]`: the `a2sb train` command (handy under `torchrun -m`)."""
    parser = argparse.ArgumentParser(prog="python -m a2sb.train", description="Train an A2SB bridge model.")
    _add_train_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return _train_command(args)
    except A2SBError as err:
        return print_error(err)
