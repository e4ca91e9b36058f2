"""`a2sb convert-checkpoint` (NVIDIA's released .ckpt -> our model folder) and `a2sb model-info`.

The model code (torch) is imported when a command runs, not while the parser is built."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser("convert-checkpoint", help="convert released Lightning .ckpt files to a model folder",
                       description="Convert NVIDIA's released A2SB checkpoints (one per expert, in t order) "
                                   "to our safetensors + JSON model folder. No pickled code is executed.")
    p.add_argument("checkpoints", nargs="+", metavar="CKPT")
    p.add_argument("--t-cutoffs", type=_floats, default=None,
                   help="comma-separated t cutoffs between experts (default: evenly spaced, 0.5 for two)")
    p.add_argument("--config", default=None,
                   help="AttnUNetF arguments (YAML/JSON; the published vf_model.init_args work as is); "
                        "default: the paper configuration")
    p.add_argument("--half", action="store_true", help="store float16 weights (half the size)")
    p.add_argument("-o", "--output", required=True, metavar="FOLDER")
    p.set_defaults(func=_convert)

    p = sub.add_parser("model-info", help="describe a model (bundled name, folder or .ckpt files)")
    p.add_argument("source", nargs="*", default=["default"])
    p.set_defaults(func=_info)


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got '{text}'") from None


def _convert(args) -> int:
    from ..model import load_model, save_model

    model = load_model(args.checkpoints, t_cutoffs=args.t_cutoffs, config=args.config)
    save_model(model, args.output, half=args.half)
    print(f"wrote {args.output}: {len(model.experts)} expert(s), t_cutoffs {model.t_cutoffs}, "
          f"{model.num_parameters():,} parameters")
    return 0


def _info(args) -> int:
    from ..model import describe, load_model

    sources = args.source if len(args.source) > 1 else args.source[0]
    print(describe(load_model(sources)))
    return 0
