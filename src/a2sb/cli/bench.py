"""`a2sb evaluate`, `a2sb degrade` and `a2sb bench quality`.

The work is imported when a command runs (a2sb.evaluate, a2sb.degrade's filters), not while the parser
is built.
"""

from __future__ import annotations

from ..degrade import LOWPASS_KINDS
from ..errors import A2SBError
from .args import BAND_LEVEL_CHOICES


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("degrade", help="make a damaged copy of a file (lowpass or gaps) for testing "
                                   "restoration", description="Write a lowpassed or gapped copy of INPUT to "
                                   "OUTPUT (.wav/.flac) and a JSON sidecar OUTPUT.json describing the damage.")
    parser.add_argument("input", metavar="INPUT")
    parser.add_argument("-o", "--output", required=True, metavar="OUTPUT")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--lowpass", type=float, metavar="HZ", help="remove content above HZ")
    what.add_argument("--gaps", metavar="GAPS",
                      help="gap length in seconds with --every, or a list like '1.0-1.3,0:05.0-0:05.5'")
    parser.add_argument("--filter", default="butter", choices=LOWPASS_KINDS, help="lowpass kind (default butter)")
    parser.add_argument("--order", type=int, default=8, help="filter order for butter/cheby1/ellip/fir (default 8)")
    parser.add_argument("--every", type=float, metavar="SEC", help="with --gaps LEN: one centred gap per SEC seconds")
    parser.set_defaults(func=_degrade)

    parser = subparsers.add_parser("evaluate", help="score restored audio against references (LSD, SiSpec, ...)",
                                   description="Score RESTORED against REFERENCE: two files, or two folders "
                                               "matched by file name. Prints a Markdown table.")
    parser.add_argument("reference", metavar="REFERENCE")
    parser.add_argument("restored", metavar="RESTORED")
    parser.add_argument("--cutoff", type=float, metavar="HZ", help="also score the band above this frequency "
                        "(LSD, per octave too, level bias, onset correlation, coherence)")
    parser.add_argument("--gaps", metavar="GAPS", help="also score only these gaps, e.g. '1.0-1.3,5.0-5.5'")
    parser.add_argument("--json", metavar="FILE", help="write one JSON object per pair to FILE")
    parser.set_defaults(func=_evaluate)

    bench = subparsers.add_parser("bench", help="benchmarks", description="Benchmarks.")
    bench_sub = bench.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")
    quality = bench_sub.add_parser("quality", help="degrade clean files, restore with each method, score",
                                   description="For every clean audio file in DIR: degrade it (lowpass, "
                                   "periodic gaps or a lossy codec round trip), restore it with each method, "
                                   "score it against the clean file, and print mean and 95%% interval per method.")
    quality.add_argument("directory", metavar="DIR")
    quality.add_argument("--task", choices=("bwe", "inpaint", "codec"), required=True)
    quality.add_argument("--codec", choices=("mp3", "vorbis", "opus"), default="mp3",
                         help="codec: the lossy codec (default mp3)")
    quality.add_argument("--bitrate", type=float, default=64.0, metavar="KBPS",
                         help="codec: target bitrate in kbit/s; the nearest the encoder reaches is used (default 64)")
    quality.add_argument("--cutoff", type=float, default=4000.0, help="bwe: lowpass cutoff in Hz (default 4000)")
    quality.add_argument("--filter", default="butter", choices=LOWPASS_KINDS, help="bwe: lowpass kind")
    quality.add_argument("--order", type=int, default=8, help="bwe: filter order (default 8)")
    quality.add_argument("--gap", type=float, default=0.3, help="inpaint: gap length in seconds (default 0.3)")
    quality.add_argument("--every", type=float, default=5.0, help="inpaint: one centred gap per SEC (default 5)")
    quality.add_argument("--methods", help="comma-separated; default: all baselines of the task plus a2sb "
                         "(also a2sb-raw: without the gap level match; bwe: a2sb-level, with band level match; "
                         "codec: decode,sbr,a2sb)")
    quality.add_argument("--model", help="a2sb: model name or path")
    quality.add_argument("--steps", type=int, help="a2sb: sampling steps (default: the model's)")
    quality.add_argument("--sampler", choices=("sde", "ode"), help="a2sb: bridge sampler (default: the model's)")
    quality.add_argument("--stereo", choices=("shared", "independent", "midside"),
                         help="a2sb: how stereo channels are restored (default: shared)")
    quality.add_argument("--band-level", choices=BAND_LEVEL_CHOICES,
                         help="a2sb: level of a regenerated band against band replication's (a2sb.levels; "
                              "default: the model's)")
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


def _degrade(args) -> int:
    import json
    import os

    from ..audio import read_audio, write_audio
    from ..degrade import insert_gaps, lowpass, periodic_gaps
    from ..plan import parse_gaps

    if os.path.exists(args.output) and os.path.exists(args.input) and os.path.samefile(args.input, args.output):
        raise A2SBError(f"refusing to overwrite the input file {args.input}; choose another output")
    audio, rate = read_audio(args.input, sample_rate=None)
    duration = audio.shape[-1] / rate
    record = {"source": os.path.abspath(args.input), "output": os.path.abspath(args.output), "sample_rate": rate}
    if args.lowpass is not None:
        if args.every is not None:
            raise A2SBError("--every goes with --gaps, not --lowpass")
        degraded = lowpass(audio, rate, args.lowpass, kind=args.filter, order=args.order)
        record.update(kind="lowpass", filter=args.filter, order=args.order, cutoff_hz=args.lowpass)
    else:
        if args.every is not None:
            try:
                length = float(args.gaps)
            except ValueError:
                raise A2SBError(f"with --every, --gaps is a length in seconds, got '{args.gaps}'") from None
            gaps = periodic_gaps(duration, length, args.every)
            if not gaps:
                raise A2SBError(f"the file ({duration:.2f} s) is shorter than one period of {args.every} s")
            record.update(gap_length_s=length, period_s=args.every)
        else:
            gaps = parse_gaps(args.gaps)
            if not isinstance(gaps, list) or not gaps:
                raise A2SBError(f"--gaps takes START-END times, e.g. 1.0-1.3,5.0-5.5; got '{args.gaps}'")
        degraded = insert_gaps(audio, rate, gaps)
        record.update(kind="gaps", gaps=[[round(s, 6), round(e, 6)] for s, e in gaps])
    write_audio(args.output, degraded, rate)
    with open(args.output + ".json", "w") as f:
        json.dump(record, f, indent=2)
    print(f"wrote {args.output} ({record['kind']}) and {args.output}.json")
    return 0
