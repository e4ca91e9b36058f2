"""What `a2sb evaluate` (score restored files against references) and `a2sb bench quality` (degrade clean
files, restore them with each method, score, summarise) run; their parsers are in a2sb.cli.bench."""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from . import baselines
from .audio import AUDIO_EXTENSIONS, SAMPLE_RATE, atomic_write, audio_info, read_audio, resample
from .degrade import insert_gaps, lowpass, periodic_gaps
from .errors import A2SBError
from .metrics import compute_metrics

# Column order of the tables; "higher is better" for the dB scores, SSIM and onset_corr, lower for the distances.
# Each key of OCTAVE_COLUMNS is followed by its per-octave values (as many as the cutoff leaves): lsd_high by
# lsd_oct1, lsd_oct2, ..., bias_db by bias_db_oct1, ..., bias_ne_db by bias_ne_db_oct1, ...
METRIC_ORDER = ["lsd", "lsd_high", "lsd_16k", "lsd_below", "hole_share", "hole_lsd", "gap_lsd", "gap_lsd_16k",
                "gap_snr", "bias_db", "bias_ne_db", "onset_corr", "coherence", "coherence_ref", "coherence_diff",
                "sispec", "log_sispec", "si_sdr", "mrstft", "ssim"]
OCTAVE_COLUMNS = {"lsd_high": "lsd_oct", "bias_db": "bias_db_oct", "bias_ne_db": "bias_ne_db_oct"}
BAND_METRICS = ["lsd", "lsd_high", "lsd_16k", "bias_db", "bias_ne_db", "onset_corr", "coherence", "coherence_ref",
                "coherence_diff"]
BENCH_METRICS = {
    "bwe": [*BAND_METRICS, "sispec", "log_sispec", "si_sdr", "mrstft"],
    "inpaint": ["gap_lsd", "gap_lsd_16k", "gap_snr", "lsd", "sispec", "log_sispec"],
    "codec": [*BAND_METRICS[:3], "lsd_below", "hole_share", "hole_lsd", *BAND_METRICS[3:], "sispec", "si_sdr"],
}
PAIRED_METRICS = {"bwe": ["lsd", "lsd_high", "lsd_16k"], "inpaint": ["gap_lsd", "gap_lsd_16k"],
                  "codec": ["lsd", "lsd_high", "lsd_16k", "lsd_below"]}  # lower is better
BENCH_DEFAULT_METHODS = {"bwe": "lowpassed,sbr,a2sb", "inpaint": "silence,lpc,similarity,a2sb",
                         "codec": "decode,sbr,a2sb"}
OURS = ("a2sb", "a2sb-raw")  # every other bench method is a baseline
ALL_GROUPS = "all"  # the summary key over every file, beside the per-group ones
MAX_BENCH_LENGTH_DIFFERENCE_S = 0.1


# --------------------------------------------------------------------------------------------------
# a2sb evaluate


def _is_audio(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in AUDIO_EXTENSIONS and not path.name.startswith(".")


def ordered_metrics(available, wanted=METRIC_ORDER) -> list[str]:
    """The keys of `wanted` found in `available`, each key of OCTAVE_COLUMNS followed by its per-octave values."""
    columns = []
    for key in wanted:
        if key in available:
            prefix = OCTAVE_COLUMNS.get(key)
            octaves = [k for k in available if prefix and k.startswith(prefix) and k[len(prefix):].isdigit()]
            columns += [key, *sorted(octaves, key=lambda k: int(k[len(prefix):]))]
    return columns


def _all_keys(records: list[dict]) -> dict:
    """The keys of every record, in first-seen order (codec files have different octave counts)."""
    return dict.fromkeys(key for record in records for key in record)


def match_pairs(reference: str, restored: str) -> list[tuple[Path, Path]]:
    """(reference, restored) file pairs: the two files, or same-named files of two folders."""
    ref, est = Path(reference), Path(restored)
    for path in (ref, est):
        if not path.exists():
            raise A2SBError(f"no such file or folder: {path}")
    if ref.is_dir() != est.is_dir():
        raise A2SBError("give two files or two folders, not one of each")
    if not ref.is_dir():
        return [(ref, est)]
    references = sorted(p for p in ref.iterdir() if _is_audio(p))
    if not references:
        raise A2SBError(f"no audio files in {ref}")
    by_stem = {}
    for p in est.iterdir():
        if _is_audio(p):
            by_stem.setdefault(p.stem, p)
    pairs, missing = [], []
    for path in references:
        # Same name first; else the same name with another extension (e.g. reference .flac, output .wav).
        partner = est / path.name if (est / path.name).is_file() else by_stem.get(path.stem)
        if partner is None:
            missing.append(path.name)
        else:
            pairs.append((path, partner))
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise A2SBError(f"no restored file in {est} for {', '.join(missing[:3])}{more}")
    return pairs


def evaluate_command(args) -> int:
    from .plan import parse_gaps

    gaps = parse_gaps(args.gaps) if args.gaps else None
    rows = []
    for ref_path, est_path in match_pairs(args.reference, args.restored):
        ref, _ = read_audio(ref_path, SAMPLE_RATE)
        est, _ = read_audio(est_path, SAMPLE_RATE)
        try:
            scores = compute_metrics(ref, est, cutoff_hz=args.cutoff, gaps=gaps)
        except A2SBError as err:
            raise A2SBError(f"{ref_path.name}: {err}") from None
        rows.append({"reference": str(ref_path), "restored": str(est_path), **scores})
    columns = ordered_metrics(_all_keys(rows))
    table = [["file", *columns]]
    table += [[Path(row["restored"]).name, *(_number(row.get(key, math.nan)) for key in columns)] for row in rows]
    if len(rows) > 1:
        means = [float(np.mean([row.get(key, math.nan) for row in rows])) for key in columns]
        table.append(["**mean**", *(_number(value) for value in means)])
    print(markdown_table(table))
    if args.json:
        write_json(args.json, rows)
    return 0


# --------------------------------------------------------------------------------------------------
# a2sb bench quality


_RESTORERS: dict = {}  # one Restorer (one loaded model) per set of options


def restore_a2sb(audio, sample_rate, cutoff_hz=None, gaps=None, model=None, steps=None, sampler=None,
                 level_match=True, stereo=None, band_level=None):
    """Restore a (channels, samples) array with a2sb's Restorer (seed 0) as `a2sb restore` would, without
    the peak-safe gain (the scores compare levels); back at `sample_rate`."""
    restorer = _restorer(model, steps, sampler, stereo, band_level, level_match)
    restored, rate = restorer.restore_audio(np.asarray(audio, np.float32).T, sample_rate, cutoff=cutoff_hz,
                                                    gaps=gaps)
    restored = np.ascontiguousarray(restored.T, dtype=np.float32)
    if rate != sample_rate:
        restored = resample(restored if restored.ndim == 2 else restored[None], rate, sample_rate)
    return restored


def _restorer(model=None, steps=None, sampler=None, stereo=None, band_level=None, level_match=True):
    """The bench's Restorer for these options (seed 0, no peak-safe gain), one per set of options."""
    from .restorer import Restorer

    options = {"model": model, "steps": steps, "sampler": sampler, "stereo": stereo, "band_level": band_level}
    options = {k: v for k, v in options.items() if v is not None}
    key = (tuple(sorted(options.items())), level_match)
    if key not in _RESTORERS:
        _RESTORERS[key] = Restorer(seed=0, batch_size=16, level_match=level_match, peak_safety=False, **options)
    return _RESTORERS[key]


def _bench_methods(task: str, names: str | None, args) -> dict:
    if task == "codec":
        return _codec_methods(names, args)
    available = dict(baselines.BWE_METHODS if task == "bwe" else baselines.INPAINT_METHODS)

    def a2sb(audio, sample_rate, cutoff_hz=None, gaps=None):
        return restore_a2sb(audio, sample_rate, cutoff_hz, gaps, model=args.model, steps=args.steps,
                            sampler=args.sampler, stereo=args.stereo, band_level=args.band_level)

    def a2sb_level(audio, sample_rate, cutoff_hz=None, gaps=None):  # the band at band replication's level
        return restore_a2sb(audio, sample_rate, cutoff_hz, gaps, model=args.model, steps=args.steps,
                            sampler=args.sampler, stereo=args.stereo, band_level="match")

    def a2sb_raw(audio, sample_rate, cutoff_hz=None, gaps=None):  # the gap fill without its level match
        return restore_a2sb(audio, sample_rate, cutoff_hz, gaps, model=args.model, steps=args.steps,
                            sampler=args.sampler, level_match=False, stereo=args.stereo)

    available["a2sb"] = a2sb
    if task == "inpaint":
        available["a2sb-raw"] = a2sb_raw
    else:
        available["a2sb-level"] = a2sb_level
    chosen = [name.strip() for name in (names or BENCH_DEFAULT_METHODS[task]).split(",") if name.strip()]
    unknown = [name for name in chosen if name not in available]
    if unknown or not chosen:
        raise A2SBError(
            f"unknown method(s) {', '.join(unknown) or '(none)'} for {task}; choose from {', '.join(available)}"
        )
    return {name: available[name] for name in dict.fromkeys(chosen)}


def _read_clean(path: Path, max_seconds: float | None) -> np.ndarray:
    if max_seconds is None:
        return read_audio(path, SAMPLE_RATE)[0]
    duration = audio_info(path).duration
    start = max((duration - max_seconds) / 2, 0.0)  # the middle: intros and endings are often silent
    return read_audio(path, SAMPLE_RATE, start=start, duration=min(max_seconds, duration))[0]


def bench_files(directory: Path) -> list[tuple[Path, str]]:
    """(file, group) for every audio file of `directory` (group "") and of its sub-folders (group: the
    sub-folder's name, e.g. one folder per package), sorted by group, then name."""
    found = [(p, "") for p in directory.iterdir() if _is_audio(p)]
    for folder in directory.iterdir():
        if folder.is_dir() and not folder.name.startswith("."):
            found += [(p, folder.name) for p in folder.iterdir() if _is_audio(p)]
    return sorted(found, key=lambda item: (item[1], item[0].name))


def run_quality_benchmark(
    files: list[tuple[Path, str]],
    task: str,
    methods: dict,
    cutoff_hz: float = 4000.0,
    filter_kind: str = "butter",
    order: int = 8,
    gap: float = 0.3,
    every: float = 5.0,
    max_seconds: float | None = None,
    log=print,
) -> list[dict]:
    """Degrade, restore and score every (file, group) with every method; one record per (file, method).

    A record's "file" is "group/name" ("name" without a group), its "group" the group.
    """
    sr = SAMPLE_RATE
    records = []
    for path, group in files:
        label = f"{group}/{path.name}" if group else path.name
        clean = _read_clean(path, max_seconds)
        duration = clean.shape[-1] / sr
        if task == "bwe":
            gaps = None
            degraded = lowpass(clean, sr, cutoff_hz, kind=filter_kind, order=order)
        else:
            gaps = periodic_gaps(duration, gap, every)
            if not gaps:
                log(f"skipping {label}: {duration:.2f} s is shorter than one period of {every} s")
                continue
            degraded = insert_gaps(clean, sr, gaps)
        for name, method in methods.items():
            started = time.perf_counter()
            restored = method(degraded, sr, cutoff_hz=cutoff_hz if task == "bwe" else None, gaps=gaps)
            seconds = time.perf_counter() - started
            restored = np.asarray(restored, dtype=np.float32)
            difference = abs(restored.shape[-1] - clean.shape[-1]) / sr
            if difference > MAX_BENCH_LENGTH_DIFFERENCE_S:
                raise A2SBError(f"method {name} changed the length of {label} by {difference:.3f} s")
            n = min(restored.shape[-1], clean.shape[-1])
            scores = compute_metrics(
                clean[..., :n], restored[..., :n], cutoff_hz=cutoff_hz if task == "bwe" else None, gaps=gaps
            )
            records.append({"file": label, "group": group, "method": name, "seconds": duration, "compute_s": seconds,
                            **scores})
            log(f"{label} {name}: " + ", ".join(f"{k} {scores[k]:.3f}" for k in BENCH_METRICS[task]))
    return records


# --------------------------------------------------------------------------------------------------
# The codec task: encode, decode, restore the decode, score against the clean file


def _codec_methods(names: str | None, args) -> dict:
    """Codec methods: each takes (the decode aligned to the clean file, the detected cutoff or None, the
    encoded file, the clean file) and returns the restoration at 44.1 kHz, or (it, a dict for the record)."""

    def decode(decoded, cutoff_hz, encoded, clean):
        return decoded

    def sbr(decoded, cutoff_hz, encoded, clean):  # nothing to extend when the decode is full band
        return decoded if cutoff_hz is None else baselines.bwe_sbr(decoded, SAMPLE_RATE, cutoff_hz)

    def a2sb(decoded, cutoff_hz, encoded, clean):
        return restore_a2sb_file(encoded, clean, model=args.model, steps=args.steps, sampler=args.sampler,
                                 stereo=args.stereo, band_level=args.band_level)

    available = {"decode": decode, "sbr": sbr, "a2sb": a2sb}
    chosen = [name.strip() for name in (names or BENCH_DEFAULT_METHODS["codec"]).split(",") if name.strip()]
    unknown = [name for name in chosen if name not in available]
    if unknown or not chosen:
        raise A2SBError(
            f"unknown method(s) {', '.join(unknown) or '(none)'} for codec; choose from {', '.join(available)}"
        )
    return {name: available[name] for name in dict.fromkeys(chosen)}


def restore_a2sb_file(encoded: Path, clean: np.ndarray, model=None, steps=None, sampler=None, stereo=None,
                      band_level=None):
    """Restore an encoded file with `Restorer.restore_file`, cutoff and gaps found automatically as `a2sb
    restore FILE` does (seed 0, no peak-safe gain); returns the output read back at 44.1 kHz and aligned to
    `clean`, and what the restorer found: {"restorer_cutoff_hz", "restorer_gaps"}."""
    from .codecs import align

    restorer = _restorer(model, steps, sampler, stereo, band_level)
    output = restorer.default_output_path(encoded)
    try:
        report = restorer.restore_file(encoded, output, cutoff="auto", gaps="auto", overwrite=True)
        restored, _ = read_audio(output, SAMPLE_RATE)
    finally:
        output.unlink(missing_ok=True)
    found = {"restorer_cutoff_hz": report.plan.cutoff_hz, "restorer_gaps": len(report.plan.gaps or [])}
    return align(restored, clean, clean.shape[-1]), found


def run_codec_benchmark(files: list[tuple[Path, str]], methods: dict, codec: str = "mp3", kbps: float = 64.0,
                        max_seconds: float | None = None, log=print) -> list[dict]:
    """Encode every (file, group) with `codec` at about `kbps` (`a2sb.codecs.encode_file`), decode it, align the decode
    to the clean file, find its cutoff (`a2sb.detect.estimate_cutoff`), restore with every method and score:
    `compute_metrics` above the detected cutoff plus `codec_scores` below it. One record per (file, method),
    with the codec, the asked and the actual kbit/s, the compression level and the detected cutoff."""
    import tempfile

    from .codecs import align, encode_file
    from .detect import estimate_cutoff
    from .metrics import codec_scores

    sr = SAMPLE_RATE
    records = []
    with tempfile.TemporaryDirectory(prefix="a2sb-codec-") as tmp:
        for path, group in files:
            label = f"{group}/{path.name}" if group else path.name
            clean = np.atleast_2d(_read_clean(path, max_seconds))
            duration = clean.shape[-1] / sr
            encoded = encode_file(clean, sr, codec, kbps, Path(tmp) / path.stem)
            decoded = align(read_audio(encoded.path, sr)[0], clean, clean.shape[-1])
            estimate = estimate_cutoff(decoded, sr)
            cutoff = estimate.cutoff if estimate.cutoff is not None and estimate.cutoff < sr / 2 else None
            info = {"codec": codec, "bitrate_kbps": kbps, "actual_kbps": encoded.kbps, "level": encoded.level,
                    "cutoff_hz": cutoff, "cutoff_kind": estimate.kind}
            log(f"{label}: {codec} {encoded.kbps:g} kbit/s (level {encoded.level:g}), detected cutoff "
                f"{'none' if cutoff is None else f'{cutoff:.0f} Hz'} ({estimate.kind})")
            for name, method in methods.items():
                started = time.perf_counter()
                restored = method(decoded, cutoff, encoded.path, clean)
                seconds = time.perf_counter() - started
                restored, found = restored if isinstance(restored, tuple) else (restored, {})
                restored = np.asarray(restored, dtype=np.float32)
                difference = abs(restored.shape[-1] - clean.shape[-1]) / sr
                if difference > MAX_BENCH_LENGTH_DIFFERENCE_S:
                    raise A2SBError(f"method {name} changed the length of {label} by {difference:.3f} s")
                n = min(restored.shape[-1], clean.shape[-1])
                scores = compute_metrics(clean[..., :n], restored[..., :n], cutoff_hz=cutoff)
                if cutoff is not None:
                    scores.update(codec_scores(clean[..., :n], decoded[..., :n], restored[..., :n], cutoff))
                records.append({"file": label, "group": group, "method": name, "seconds": duration,
                                "compute_s": seconds, **info, **found, **scores})
                log(f"{label} {name}: " + ", ".join(f"{k} {scores[k]:.3f}" for k in BENCH_METRICS["codec"]
                                                    if k in scores))
    return records


def mean_interval(values) -> tuple[float, float, float]:
    """Mean and two-sided 95 % Student-t interval; the interval is (nan, nan) for fewer than 2 values."""
    values = np.asarray([v for v in values if np.isfinite(v)], dtype=np.float64)
    if len(values) == 0:
        return math.nan, math.nan, math.nan
    mean = float(values.mean())
    if len(values) < 2:
        return mean, math.nan, math.nan
    from scipy.stats import t

    half = float(t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values)))
    return mean, mean - half, mean + half


def summarise(records: list[dict], metrics: list[str]) -> dict:
    """{method: {metric: {mean, low, high, n}, 'compute_per_audio_s': ...}} in first-seen method order."""
    summary = {}
    for method in dict.fromkeys(r["method"] for r in records):
        rows = [r for r in records if r["method"] == method]
        entry = {}
        for key in metrics:
            mean, low, high = mean_interval([r.get(key, math.nan) for r in rows])
            entry[key] = {"mean": mean, "low": low, "high": high, "n": len(rows)}
        entry["compute_per_audio_s"] = sum(r["compute_s"] for r in rows) / sum(r["seconds"] for r in rows)
        summary[method] = entry
    return summary


def summarise_groups(records: list[dict], metrics: list[str]) -> dict:
    """{group: summarise(that group's records)} in first-seen group order, plus ALL_GROUPS over every record."""
    groups = {g: summarise([r for r in records if r["group"] == g], metrics) for g in dict.fromkeys(
        r["group"] for r in records)}
    return {**groups, ALL_GROUPS: summarise(records, metrics)}


def paired_difference(records: list[dict], method: str, baseline: str, metric: str) -> dict:
    """Per-file `metric` of `method` minus `baseline`: mean, 95 % interval, n, and on how many files it is lower."""
    scores: dict[str, dict] = {}
    for r in records:
        scores.setdefault(r["file"], {})[r["method"]] = r.get(metric)
    diffs = [s[method] - s[baseline] for s in scores.values()
             if all(s.get(m) is not None and np.isfinite(s[m]) for m in (method, baseline))]
    mean, low, high = mean_interval(diffs)
    return {"mean": mean, "low": low, "high": high, "n": len(diffs), "lower": int(sum(d < 0 for d in diffs))}


def paired_against_best_baseline(records: list[dict], task: str, method: str = "a2sb") -> dict | None:
    """`method` minus the baseline with the lowest mean of the task's main metric, per PAIRED_METRICS key.

    None when `method` or every baseline is missing.
    """
    methods = list(dict.fromkeys(r["method"] for r in records))
    baselines_run = [m for m in methods if m not in OURS]
    if method not in methods or not baselines_run:
        return None
    main = PAIRED_METRICS[task][0]
    means = {m: mean_interval([r.get(main, math.nan) for r in records if r["method"] == m])[0] for m in baselines_run}
    best = min(baselines_run, key=lambda m: means[m] if np.isfinite(means[m]) else math.inf)
    return {"method": method, "baseline": best,
            **{key: paired_difference(records, method, best, key) for key in PAIRED_METRICS[task]}}


def _summary_table(summary: dict, metrics: list[str]) -> str:
    table = [["method", *metrics, "compute s / audio s"]]
    for method, entry in summary.items():
        table.append([method, *(_with_interval(entry[key]) for key in metrics), f"{entry['compute_per_audio_s']:.3g}"])
    return markdown_table(table)


def _paired_table(paired: dict, task: str) -> str:
    table = [["group", "a2sb minus", *PAIRED_METRICS[task]]]
    for group, entry in paired.items():
        cells = [f"{_with_interval(entry[k])}, lower on {entry[k]['lower']} of {entry[k]['n']}"
                 for k in PAIRED_METRICS[task]]
        table.append([group or "(top folder)", entry["baseline"], *cells])
    return markdown_table(table)


def bench_quality_command(args) -> int:
    directory = Path(args.directory)
    if not directory.is_dir():
        raise A2SBError(f"not a folder: {directory}")
    files = bench_files(directory)
    if not files:
        raise A2SBError(f"no audio files in {directory} or its sub-folders")
    if args.max_seconds is not None and args.max_seconds <= 0:
        raise A2SBError("--max-seconds must be positive")
    methods = _bench_methods(args.task, args.methods, args)
    log = lambda text: print(text, file=sys.stderr)  # noqa: E731
    if args.task == "codec":
        if args.bitrate is None or args.bitrate <= 0:
            raise A2SBError("--task codec needs a positive --bitrate in kbit/s")
        records = run_codec_benchmark(files, methods, args.codec, args.bitrate, args.max_seconds, log=log)
    else:
        records = run_quality_benchmark(
            files, args.task, methods, cutoff_hz=args.cutoff, filter_kind=args.filter, order=args.order,
            gap=args.gap, every=args.every, max_seconds=args.max_seconds, log=log,
        )  # fmt: skip
    if not records:
        raise A2SBError("no file could be scored (all shorter than one gap period?)")
    settings = {k: getattr(args, k) for k in ("task", "cutoff", "filter", "order", "gap", "every", "max_seconds")}
    if args.task == "codec":
        settings = {"task": "codec", "codec": args.codec, "bitrate_kbps": args.bitrate,
                    "max_seconds": args.max_seconds}
    settings.update(model=args.model, steps=args.steps, sampler=args.sampler, stereo=args.stereo,
                    directory=str(directory))
    result = bench_result(settings, records)
    metrics = ordered_metrics(_all_keys(records), BENCH_METRICS[args.task])
    grouped = "groups" in result
    groups = {**result.get("groups", {}), ALL_GROUPS: result["summary"]}
    paired = result.get("paired", {})
    setting = f"cutoff {args.cutoff:g} Hz, {args.filter} order {args.order}" if args.task == "bwe" else (
        f"{args.gap:g} s gap every {args.every:g} s"
    )  # fmt: skip
    if args.task == "codec":
        actual = [r["actual_kbps"] for r in records if r["method"] == records[0]["method"]]
        cutoffs = [r["cutoff_hz"] for r in records if r["method"] == records[0]["method"]]
        found = [c for c in cutoffs if c is not None]
        setting = (f"{args.codec} at {args.bitrate:g} kbit/s asked, {min(actual):g}-{max(actual):g} actual; "
                   f"detected cutoff {f'{min(found):.0f}-{max(found):.0f} Hz' if found else 'none'} "
                   f"({len(cutoffs) - len(found)} of {len(cutoffs)} full band)")
    print(f"{args.task}: {setting}; mean ± 95 % t-interval half-width")
    for group, summary in groups.items():
        if grouped or group == ALL_GROUPS:
            files_in = {r["file"] for r in records if group == ALL_GROUPS or r["group"] == group}
            title = "all files" if group == ALL_GROUPS else f"group {group or '(top folder)'}"
            print(f"\n{title}: {len(files_in)} file(s)\n\n{_summary_table(summary, metrics)}")
    if paired:
        print("\npaired per-file differences (a2sb minus the baseline best on the group's mean "
              f"{PAIRED_METRICS[args.task][0]}): mean ± 95 % half-width\n\n{_paired_table(paired, args.task)}")
    if args.plot:
        plot_per_file(records, metrics, args.plot, title=f"{args.task}: {setting}")
    if args.json:
        write_json(args.json, result)
    return 0


def bench_result(settings: dict, records: list[dict]) -> dict:
    """The bench's JSON result: settings, per-file records, the summary over all files, per group (when the
    files are in sub-folders) and the paired differences against the best baseline."""
    task = settings["task"]
    groups = summarise_groups(records, ordered_metrics(_all_keys(records), BENCH_METRICS[task]))
    grouped = any(r["group"] for r in records)
    result = {"settings": settings, "summary": groups[ALL_GROUPS], "files": records}
    if grouped:
        result["groups"] = {g: summary for g, summary in groups.items() if g != ALL_GROUPS}
    paired = {g: paired_against_best_baseline([r for r in records if g == ALL_GROUPS or r["group"] == g], task)
              for g in groups}
    paired = {g: entry for g, entry in paired.items() if entry is not None and (grouped or g == ALL_GROUPS)}
    if paired:
        result["paired"] = paired
    return result


def plot_per_file(records: list[dict], metrics: list[str], path: str, title: str = "") -> None:
    """One panel per metric: each file's score, one marker series per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = list(dict.fromkeys(r["file"] for r in records))
    methods = list(dict.fromkeys(r["method"] for r in records))
    fig, axes = plt.subplots(len(metrics), 1, figsize=(max(6, 0.6 * len(files) + 3), 2.2 * len(metrics)))
    axes = np.atleast_1d(axes)
    for axis, key in zip(axes, metrics):
        for method in methods:
            values = {r["file"]: r[key] for r in records if r["method"] == method}
            axis.plot(range(len(files)), [values.get(f, np.nan) for f in files], "o-", label=method, alpha=0.8)
        axis.set_ylabel(key)
        axis.grid(alpha=0.3)
    axes[-1].set_xticks(range(len(files)), files, rotation=45, ha="right", fontsize=7)
    for axis in axes[:-1]:
        axis.set_xticks(range(len(files)), [""] * len(files))
    axes[0].legend(fontsize=8, ncol=len(methods))
    axes[0].set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# --------------------------------------------------------------------------------------------------
# Output helpers


def _number(value: float) -> str:
    return "nan" if not np.isfinite(value) else f"{value:.4g}"


def _with_interval(stats: dict) -> str:
    if not np.isfinite(stats["low"]):
        return _number(stats["mean"])
    return f"{_number(stats['mean'])} ± {_number((stats['high'] - stats['low']) / 2)}"


def markdown_table(rows: list[list[str]]) -> str:
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]

    def line(row):
        return "| " + " | ".join(str(cell).ljust(width) for cell, width in zip(row, widths)) + " |"

    separator = "|" + "|".join("-" * (width + 2) for width in widths) + "|"
    return "\n".join([line(rows[0]), separator, *(line(row) for row in rows[1:])])


def write_json(path: str, data) -> None:
    def clean(value):  # JSON has no NaN: write null
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    with atomic_write(path) as tmp, open(tmp, "w") as f:
        json.dump(clean(data), f, indent=2)
