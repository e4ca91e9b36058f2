"""`a2sb evaluate`, `a2sb degrade` and `a2sb bench quality`.

The work is imported when a command runs (a2sb.evaluate), not while the parser is built.
"""

from __future__ import annotations


def add_parser(subparsers) -> None:
    from ..degrade import LOWPASS_KINDS, add_degrade_command  # (it imports scipy: a2sb --help waits for it)

    add_degrade_command(subparsers)

    parser = subparsers.add_parser(
        "evaluate",
        help="score restored audio against references (LSD, SiSpec, ...)",
        description="Score RESTORED against REFERENCE: two files, or two folders matched by file name. "
        "Prints a Markdown table.",
    )
    parser.add_argument("reference", metavar="REFERENCE")
    parser.add_argument("restored", metavar="RESTORED")
    parser.add_argument("--cutoff", type=float, metavar="HZ", help="also report LSD above this frequency")
    parser.add_argument("--gaps", metavar="GAPS", help="also score only these gaps, e.g. '1.0-1.3,5.0-5.5'")
    parser.add_argument("--json", metavar="FILE", help="write one JSON object per pair to FILE")
    parser.set_defaults(func=_evaluate)

    bench = subparsers.add_parser("bench", help="benchmarks", description="Benchmarks.")
    bench_sub = bench.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")
    quality = bench_sub.add_parser(
        "quality",
        help="degrade clean files, restore with each method, score",
        description="For every clean audio file in DIR: degrade it (lowpass or periodic gaps), restore it "
        "with each method, score it against the clean file, and print mean and 95%% interval per method.",
    )
    quality.add_argument("directory", metavar="DIR")
    quality.add_argument("--task", choices=("bwe", "inpaint"), required=True)
    quality.add_argument("--cutoff", type=float, default=4000.0, help="bwe: lowpass cutoff in Hz (default 4000)")
    quality.add_argument("--filter", default="butter", choices=LOWPASS_KINDS, help="bwe: lowpass kind")
    quality.add_argument("--order", type=int, default=8, help="bwe: filter order (default 8)")
    quality.add_argument("--gap", type=float, default=0.3, help="inpaint: gap length in seconds (default 0.3)")
    quality.add_argument("--every", type=float, default=5.0, help="inpaint: one centred gap per SEC (default 5)")
    quality.add_argument("--methods", help="comma-separated; default: all baselines of the task plus a2sb "
                         "(also a2sb-raw: without the gap level match; bwe: a2sb-level, with band level match)")
    quality.add_argument("--model", help="a2sb: model name or path")
    quality.add_argument("--steps", type=int, help="a2sb: sampling steps (default: the model's)")
    quality.add_argument("--sampler", choices=("sde", "ode"), help="a2sb: bridge sampler (default: the model's)")
    quality.add_argument("--stereo", choices=("shared", "independent", "midside"),
                         help="a2sb: how stereo channels are restored (default: shared)")
    quality.add_argument("--max-seconds", type=float, metavar="S", help="score only the middle S seconds of a file")
    quality.add_argument("--plot", metavar="PNG", help="write a per-file plot of the scores")
    quality.add_argument("--json", metavar="FILE", help="write per-file scores and the summary as JSON")
    quality.set_defaults(func=_bench_quality)


def _evaluate(args) -> int:
    from ..evaluate import evaluate_command

    return evaluate_command(args)


def _bench_quality(args) -> int:
    from ..evaluate import bench_quality_command

    return bench_quality_command(args)
