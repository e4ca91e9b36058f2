"""Run the quality benchmark of issue 13 and write benchmarks/quality.md from its JSON results.

    python benchmarks/quality_report.py --run                  # every bench (bundled model), then the report
    python benchmarks/quality_report.py                        # the report only, from benchmarks/results/
    python benchmarks/quality_report.py --run --model runs/export --results /tmp/cand -o /tmp/cand.md
    python benchmarks/quality_report.py --run --sets heldout   # one set (two such runs can go in parallel)
    python benchmarks/quality_report.py --merge /tmp/cand      # a new model's a2sb-only runs into the results
    python benchmarks/quality_report.py --run --sets fullband  # the full-band renders: BWE and MP3 only

The verdict is judged on the held-out packages (data/heldout_clips/<package>/*.flac: whole packages
never trained on), per package and over all of them; the old held-out tracks (data/test_clips: the
test split of the training packages) are a secondary table, and the full-band renders
(data/fullband_clips/<soundfont>/*.flac, from scripts/make_fullband_set.py: soundfonts no training
data uses) a third, for BWE and MP3 only. Hand-written commentary goes in
benchmarks/quality_notes.md and is copied into the report under "Notes".
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from datetime import date
from pathlib import Path

from a2sb.evaluate import (
    ALL_GROUPS,
    OCTAVE_COLUMNS,
    OURS,
    PAIRED_METRICS,
    bench_result,
    paired_against_best_baseline,
    paired_difference,
    summarise_groups,
    write_json,
)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
SETS = {  # set name -> (folder, what it is)
    "heldout": ("data/heldout_clips", "held-out packages, one sub-folder per package, never trained on"),
    "test": ("data/test_clips", "held-out tracks of the training packages (their test split)"),
    "fullband": ("data/fullband_clips", "full-band renders for evaluation only (scripts/make_fullband_set.py: "
                 "soundfonts no training data uses), one sub-folder per soundfont"),
}
TASKS = {  # task name -> (bench arguments, methods, seconds scored per clip)
    "bwe_4k": (["--task", "bwe", "--cutoff", "4000"], "lowpassed,sbr,a2sb", 8),
    "bwe_8k": (["--task", "bwe", "--cutoff", "8000"], "lowpassed,sbr,a2sb", 8),
    # 10 s: two 0.3 s gaps per 10 s held-out clip instead of one
    "inpaint_0.3s": (["--task", "inpaint", "--gap", "0.3", "--every", "5"], "silence,lpc,similarity,a2sb", 10),
    # a real MP3 round trip; cutoff and gaps found on the decode, a2sb restores the .mp3 file itself
    "codec_mp3_64": (["--task", "codec", "--codec", "mp3", "--bitrate", "64"], "decode,sbr,a2sb", 8),
    "codec_mp3_128": (["--task", "codec", "--codec", "mp3", "--bitrate", "128"], "decode,sbr,a2sb", 8),
}
SET_TASKS = {  # the tasks run on each set (default: every task)
    "test": ("bwe_4k", "bwe_8k", "inpaint_0.3s"),
    "fullband": ("bwe_4k", "bwe_8k", "codec_mp3_64", "codec_mp3_128"),
}
COLUMNS = {  # each of OCTAVE_COLUMNS is followed by its per-octave values
    "bwe": ["lsd", "lsd_high", "lsd_16k", "bias_db", "bias_ne_db", "onset_corr", "coherence", "coherence_ref",
            "coherence_diff"],
    "inpaint": ["gap_lsd", "gap_lsd_16k", "gap_snr", "lsd"],
    "codec": ["lsd", "lsd_high", "lsd_16k", "lsd_below", "hole_share", "hole_lsd", "bias_db", "bias_ne_db",
              "onset_corr", "coherence_diff"],
}
LSD_MARGIN = 0.85  # a2sb's LSD at most 85 % of SBR's
BIAS_LIMIT_DB = 2.0
COHERENCE_LIMIT = 0.2
SPEED_JSON = RESULTS / "restore_speed.json"  # written by benchmarks/restore_speed.py (its last line)
SPEED_LIMIT_S = 90.0


def result_name(set_name: str, task: str) -> str:
    return f"{set_name}_{task}"


def tasks_of(set_name: str) -> tuple[str, ...]:
    return SET_TASKS.get(set_name, tuple(TASKS))


def bench_command(set_name: str, task: str, results: Path, methods: str | None, model: str | None) -> list[str]:
    args, default_methods, seconds = TASKS[task]
    chosen = default_methods if methods is None else ",".join(
        m for m in default_methods.split(",") if m in methods.split(","))
    command = ["a2sb", "bench", "quality", SETS[set_name][0], *args, "--max-seconds", str(seconds),
               "--methods", chosen, "--json", str(results / f"{result_name(set_name, task)}.json")]
    return command + (["--model", model] if model and "a2sb" in chosen.split(",") else [])


def run_all(results: Path, methods: str | None, model: str | None, sets: list[str] | None = None) -> None:
    for set_name in sets or SETS:
        if not (ROOT / SETS[set_name][0]).is_dir():
            print(f"skipping {SETS[set_name][0]}: no such folder", flush=True)
            continue
        for task in tasks_of(set_name):
            command = bench_command(set_name, task, results, methods, model)
            if command[command.index("--methods") + 1] == "":
                continue
            print("+", " ".join(command), flush=True)
            subprocess.run(command, cwd=ROOT, check=True, stderr=subprocess.DEVNULL)


def merge_results(results: Path, source: Path) -> list[str]:
    """Replace, in each result of `results`, the rows of the methods that the same-named result in `source`
    holds (e.g. a new model's `--methods a2sb` runs on the same clips), and recompute its summaries the way
    the bench does. The baselines' rows are deterministic, so they need not be run again. Every pair is
    checked before any result is written."""
    pairs = []
    names = sorted(result_name(set_name, task) for set_name in SETS for task in tasks_of(set_name))
    for path in (source / f"{name}.json" for name in names):
        target = results / path.name
        if not (path.exists() and target.exists()):
            continue  # e.g. restore_speed.json is no bench result
        old, new = load(results, target.stem), load(source, path.stem)
        for key in ("task", "cutoff", "filter", "order", "gap", "every", "codec", "bitrate_kbps", "max_seconds",
                    "directory"):
            if old["settings"].get(key) != new["settings"].get(key):
                raise SystemExit(f"{path}: {key} differs from {target} ({new['settings'].get(key)!r} vs "
                                 f"{old['settings'].get(key)!r}): not the same bench")
        methods = set(r["method"] for r in new["files"])
        files = lambda data, m: sorted(r["file"] for r in data["files"] if r["method"] == m)  # noqa: E731
        for m in methods & set(r["method"] for r in old["files"]):
            if files(old, m) != files(new, m):
                raise SystemExit(f"{path}: {m} was scored on other clips than in {target}")
        pairs.append((path, target, old, new, methods))
    merged = []
    for path, target, old, new, methods in pairs:
        # each replaced row keeps its place (the bench writes the methods interleaved, file by file)
        fresh = {(r["file"], r["method"]): r for r in new["files"]}
        records = [fresh.pop((r["file"], r["method"]), r) if r["method"] in methods else r for r in old["files"]]
        records += list(fresh.values())  # methods the old result did not have
        write_json(str(target), bench_result(old["settings"], records))
        merged.append(f"{target.name}: {', '.join(sorted(methods))} from {path}")
    return merged


# --------------------------------------------------------------------------------------------------
# Reading results


def load(results: Path, name: str) -> dict | None:
    path = results / f"{name}.json"
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    for record in data["files"]:  # JSON null -> NaN, and flat folders have no group
        record.setdefault("group", "")
        for key, value in record.items():
            if value is None:
                record[key] = float("nan")
    return data


def kind(data: dict) -> str:
    return data["settings"]["task"]


def columns(data: dict) -> list[str]:
    present = {k for r in data["files"] for k in r}

    def octaves(key: str) -> list[str]:
        prefix = OCTAVE_COLUMNS.get(key)
        found = [k for k in present if prefix and k.startswith(prefix) and k[len(prefix):].isdigit()]
        return sorted(found, key=lambda k: int(k[len(prefix):]))

    return [c for key in COLUMNS[kind(data)] for c in [key, *octaves(key)] if c in present]


def groups(data: dict) -> dict:
    """{group: {method: {metric: stats}}} per package and ALL_GROUPS, recomputed from the per-file scores."""
    return summarise_groups(data["files"], columns(data))


def records_of(data: dict, group: str) -> list[dict]:
    return [r for r in data["files"] if group == ALL_GROUPS or r["group"] == group]


def mean(summary: dict, method: str, key: str) -> float | None:
    stats = summary.get(method, {}).get(key)
    return None if stats is None or stats["mean"] != stats["mean"] else stats["mean"]


def stat(stats: dict | None, digits: int = 2) -> str:
    if stats is None or stats["mean"] != stats["mean"]:
        return "–"
    text = f"{stats['mean']:.{digits}f}"
    return text if stats["low"] != stats["low"] else f"{text} ± {(stats['high'] - stats['low']) / 2:.{digits}f}"


def paired_text(stats: dict) -> str:
    return f"{stat(stats)}, lower on {stats['lower']} of {stats['n']} clips"


def octave_keys(data: dict) -> list[str]:
    return [c for c in columns(data) if c.startswith("bias_db_oct")]


def octave_prefix(key: str) -> str | None:
    """"lsd_oct", "bias_db_oct" or "bias_ne_db_oct" when `key` is that followed by an octave number."""
    return next((p for p in OCTAVE_COLUMNS.values() if key.startswith(p) and key[len(p):].isdigit()), None)


def octave_label(data: dict, key: str) -> str:
    """A per-octave column's header: the band in kHz (bias_db_oct*), prefixed for the other metrics; the codec
    task's octaves are above each clip's detected cutoff, so only their number is shown."""
    prefix = octave_prefix(key)
    k = int(key[len(prefix):])
    name = {"bias_db_oct": "", "lsd_oct": "LSD ", "bias_ne_db_oct": "bias_ne "}[prefix]
    if kind(data) != "bwe":
        return f"{name or 'bias '}octave {k}"
    cutoff = data["settings"]["cutoff"]
    return f"{name}{cutoff * 2 ** (k - 1) / 1000:g}–{min(cutoff * 2**k, 22050) / 1000:g} kHz"


# --------------------------------------------------------------------------------------------------
# Verdicts (issue 13, target 6): judged on the mean over the clips of a group


def met(ok: bool | None) -> str:
    return "not measured" if ok is None else ("**met**" if ok else "**not met**")


def verdict_lsd_margin(data: dict, group: str) -> tuple[bool | None, str]:
    summary = groups(data)[group]
    a, s = mean(summary, "a2sb", "lsd"), mean(summary, "sbr", "lsd")
    if a is None or s is None:
        return None, ""
    change = (a - s) / s * 100
    words = f"{-change:.0f} % lower" if change < 0 else f"{change:.0f} % higher"
    paired = paired_text(paired_difference(records_of(data, group), "a2sb", "sbr", "lsd"))
    return a <= LSD_MARGIN * s, f"{a:.2f} vs SBR {s:.2f} ({words}; paired {paired})"


def verdict_band_lsd(data: dict, group: str) -> tuple[bool | None, str]:
    summary = groups(data)[group]
    values = {k: (mean(summary, "a2sb", k), mean(summary, "sbr", k)) for k in ("lsd_high", "lsd_16k")}
    if any(v is None for pair in values.values() for v in pair):
        return None, ""
    ok = all(a < s for a, s in values.values())
    (ah, sh), (a16, s16) = values["lsd_high"], values["lsd_16k"]
    return ok, f"above the cutoff {ah:.2f} vs {sh:.2f}; up to 16 kHz {a16:.2f} vs {s16:.2f}"


def verdict_bias(data: dict, group: str) -> tuple[bool | None, str]:
    summary = groups(data)[group]
    values = {k: mean(summary, "a2sb", k) for k in octave_keys(data)}
    if not values or any(v is None for v in values.values()):
        return None, ""
    text = ", ".join(f"{octave_label(data, k)} {v:+.1f} dB" for k, v in values.items())
    return all(abs(v) <= BIAS_LIMIT_DB for v in values.values()), text


def verdict_coherence(data: dict, group: str) -> tuple[bool | None, str]:
    rows = [r for r in records_of(data, group) if r["method"] == "a2sb" and r["coherence_diff"] == r["coherence_diff"]]
    if not rows:
        return None, ""
    absolute = sum(abs(r["coherence_diff"]) for r in rows) / len(rows)
    restored = sum(r["coherence"] for r in rows) / len(rows)
    reference = sum(r["coherence_ref"] for r in rows) / len(rows)
    text = f"mean absolute difference {absolute:.2f} (a2sb {restored:.2f}, reference {reference:.2f})"
    return absolute <= COHERENCE_LIMIT, text


def verdict_gap_lsd(data: dict, group: str) -> tuple[bool | None, str]:
    summary = groups(data)[group]
    a = mean(summary, "a2sb", "gap_lsd")
    others = {m: mean(summary, m, "gap_lsd") for m in summary if m not in OURS}
    if a is None or not others or any(v is None for v in others.values()):
        return None, ""
    listed = ", ".join(f"{m} {v:.2f}" for m, v in others.items())
    best = min(others, key=others.get)
    paired = paired_text(paired_difference(records_of(data, group), "a2sb", best, "gap_lsd"))
    return all(a < v for v in others.values()), f"gap-LSD {a:.2f}; {listed}; paired against {best} {paired}"


def verdict_row(target: str, data: dict | None, judge) -> str:
    """One table row: the verdict over all packages, with its figures, then each package's verdict."""
    if data is None:
        return f"| {target} | not measured | |"
    ok, text = judge(data, ALL_GROUPS)
    per_package = [f"{g}: {met(judge(data, g)[0])}" for g in groups(data) if g not in (ALL_GROUPS, "")]
    return f"| {target} | {met(ok)}{': ' + text if text else ''} | {'; '.join(per_package)} |"


def speed_row() -> str:
    target = f"30 s stereo BWE at the defaults ≤ {SPEED_LIMIT_S:g} s on 2 cores"
    if not SPEED_JSON.exists():
        return f"| {target} | see benchmarks/README.md (measured there, not by this script) | |"
    speed = json.loads(SPEED_JSON.read_text())
    seconds = 30 * speed["rtf"]
    return (f"| {target} | {met(seconds <= SPEED_LIMIT_S)}: {seconds:.1f} s (real-time factor {speed['rtf']:.2f}, "
            f"{speed.get('model', '?')} on {speed.get('device', '?')}, from {SPEED_JSON.relative_to(ROOT)}) | |")


def verdict_table(data: dict) -> list[str]:
    rows = ["| target (issue 13) | over all held-out packages | per package |", "|---|---|---|"]
    for task, label in (("bwe_4k", "4 kHz"), ("bwe_8k", "8 kHz")):
        bwe = data.get(result_name("heldout", task))
        rows += [
            verdict_row(f"BWE from {label}: LSD ≥ 15 % below SBR", bwe, verdict_lsd_margin),
            verdict_row(f"BWE from {label}: lower LSD than SBR above the cutoff and up to 16 kHz", bwe,
                        verdict_band_lsd),
            verdict_row(f"BWE from {label}: level bias within {BIAS_LIMIT_DB:g} dB in every octave above the cutoff",
                        bwe, verdict_bias),
            verdict_row(f"BWE from {label}: coherence above the cutoff within {COHERENCE_LIMIT:g} of the reference",
                        bwe, verdict_coherence),
        ]
    rows.append(verdict_row("inpainting, 0.3 s every 5 s: gap-LSD below every baseline",
                            data.get(result_name("heldout", "inpaint_0.3s")), verdict_gap_lsd))
    rows.append(speed_row())
    return rows


# --------------------------------------------------------------------------------------------------
# Tables


def command_text(data: dict, path: str) -> str:
    st = data["settings"]
    args = ["a2sb bench quality", st["directory"], "--task", st["task"]]
    if st["task"] == "bwe":
        args += ["--cutoff", f"{st['cutoff']:g}"]
    elif st["task"] == "codec":
        args += ["--codec", st["codec"], "--bitrate", f"{st['bitrate_kbps']:g}"]
    else:
        args += ["--gap", f"{st['gap']:g}", "--every", f"{st['every']:g}"]
    if st.get("max_seconds") is not None:
        args += ["--max-seconds", f"{st['max_seconds']:g}"]
    args += ["--methods", ",".join(dict.fromkeys(r["method"] for r in data["files"]))]
    for key in ("model", "steps", "sampler"):
        if st.get(key) not in (None, "default"):
            args += [f"--{key}", str(st[key])]
    return " ".join([*args, "--json", path])


def title(data: dict) -> str:
    st = data["settings"]
    if st["task"] == "bwe":
        return f"bandwidth extension from {st['cutoff'] / 1000:g} kHz (Butterworth order {st['order']})"
    if st["task"] == "codec":
        rows = [r for r in data["files"] if r["method"] == data["files"][0]["method"]]
        actual = [r["actual_kbps"] for r in rows]
        cutoffs = [r["cutoff_hz"] for r in rows if r["cutoff_hz"] == r["cutoff_hz"]]
        found = f"{min(cutoffs) / 1000:.1f}–{max(cutoffs) / 1000:.1f} kHz" if cutoffs else "none"
        return (f"{st['codec'].upper()} at {st['bitrate_kbps']:g} kbit/s (actual {min(actual):g}–{max(actual):g}), "
                f"detected cutoffs {found}")
    return f"inpainting, {st['gap']:g} s gaps every {st['every']:g} s"


def method_table(data: dict, summary: dict) -> list[str]:
    cols = columns(data)
    headers = [octave_label(data, c) if octave_prefix(c) else c for c in cols]
    lines = ["| method | " + " | ".join(headers) + " | compute s / audio s |", "|---|" + "---:|" * (len(cols) + 1)]
    for method, entry in summary.items():
        cells = [stat(entry.get(c)) for c in cols] + [f"{entry['compute_per_audio_s']:.3g}"]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


def paired_table(data: dict, per_group: bool) -> list[str]:
    task = kind(data)
    rows = []
    for group in groups(data) if per_group else [ALL_GROUPS]:
        paired = paired_against_best_baseline(records_of(data, group), task)
        if paired is not None:
            name = group if group != ALL_GROUPS else f"all {group_word(data)}s" if per_group else "all clips"
            rows.append(f"| {name} | {paired['baseline']} | "
                        + " | ".join(paired_text(paired[k]) for k in PAIRED_METRICS[task]) + " |")
    if not rows:
        return []
    return ["Paired per-clip differences, a2sb minus the baseline with the lowest mean "
            f"{PAIRED_METRICS[task][0]} in the group (mean ± 95 % half-width):", "",
            "| group | baseline | " + " | ".join(PAIRED_METRICS[task]) + " |",
            "|---|---|" + "---:|" * len(PAIRED_METRICS[task]), *rows]


def group_word(data: dict) -> str:
    """What a sub-folder of the set is: a package, or a soundfont in the full-band set."""
    return "soundfont" if Path(data["settings"]["directory"]).name == Path(SETS["fullband"][0]).name else "package"


def task_section(data: dict, path: str, per_group: bool) -> list[str]:
    summaries = groups(data)
    n = len({r["file"] for r in data["files"]})
    lines = [f"### {title(data)}: {n} clips", "", f"    {command_text(data, path)}", ""]
    for group, summary in summaries.items():
        if per_group and group != ALL_GROUPS:
            count = len({r["file"] for r in records_of(data, group)})
            lines += [f"**{group or '(top folder)'}** ({count} clips)", "", *method_table(data, summary), ""]
    label = f"**all {group_word(data)}s**" if per_group else "**all clips**"
    lines += [f"{label} ({n} clips)", "", *method_table(data, summaries[ALL_GROUPS]), ""]
    paired = paired_table(data, per_group)
    return lines + (paired + [""] if paired else [])


def report(results: Path) -> str:
    data = {result_name(s, t): load(results, result_name(s, t)) for s in SETS for t in tasks_of(s)}
    torch_version = ""
    try:
        import torch

        torch_version = f" with torch {torch.__version__}"
    except ImportError:
        pass
    shown = results.relative_to(ROOT) if results.is_relative_to(ROOT) else results
    parts = [
        "# Quality benchmark (issue 13)", "",
        "Written by `python benchmarks/quality_report.py --run`, which runs every `a2sb bench quality` command",
        "below (docs/evaluation.md). The targets are judged on **held-out packages** (`data/heldout_clips`,",
        "one sub-folder per package: whole packages, of different styles, that no model was trained on),",
        "over all of them and per package; the clips of the training packages' test split (`data/test_clips`)",
        "are a secondary table. Each clip is degraded, restored and scored (stereo; most metrics on the mono",
        "mix, the level bias per channel, the coherence between the channels). Mean ± 95 % t-interval",
        "half-width over the clips; `compute s / audio s` is wall time per second of stereo audio on the",
        f"project's 2-core CPU. Generated on {date.today().isoformat()}{torch_version} from `{shown}/`.",
        "`a2sb` is the bundled default model (MODEL_CARD.md) at its default sampling settings unless a",
        "command names `--model`; `sbr` is the strong spectral band replication of `a2sb.sbr`.", "",
        *verdict_table(data), "",
        "LSD is in bels (log10 of the power ratio, no factor 10). `lsd_16k` / `gap_lsd_16k`: the same over",
        "the bins up to 16 kHz (lossy-coded references are nearly empty above). Level bias: mean over frames",
        "of 10·log10(restored / reference band power) per octave above the cutoff, per channel and averaged;",
        "`bias_db` is its mean over the octaves. Coherence: magnitude-squared coherence between the channels,",
        "averaged over the bins above the cutoff; the coherence target is judged on the mean over clips of",
        "the absolute difference a2sb − reference. A target is met when the mean over the clips meets it.",
    ]
    notes = ROOT / "benchmarks" / "quality_notes.md"
    if notes.exists():
        parts += ["", "## Notes", "", notes.read_text().strip()]
    for set_name, (folder, what) in SETS.items():
        present = [(t, data[result_name(set_name, t)]) for t in tasks_of(set_name) if data[result_name(set_name, t)]]
        if not present:
            continue
        parts += ["", f"## `{folder}`: {what}", ""]
        for task, d in present:
            parts += task_section(d, f"{shown}/{result_name(set_name, task)}.json",
                                  per_group=set_name in ("heldout", "fullband"))
    return "\n".join(parts).rstrip() + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="store_true", help="run the benches first (else only write the report)")
    parser.add_argument("--model", help="a2sb model (bundled name or folder) for the a2sb runs; default: bundled")
    parser.add_argument("--methods", help="run only these of each task's methods (comma-separated)")
    parser.add_argument("--results", default=str(RESULTS), help="folder of the JSON results (default: %(default)s)")
    parser.add_argument("--merge", metavar="DIR", help="first replace the results' rows of the methods that DIR's "
                        "same-named results hold (a candidate model's a2sb-only runs), recomputing the summaries")
    parser.add_argument("--sets", help=f"run only these sets (comma-separated of {', '.join(SETS)}; default all)")
    parser.add_argument("-o", "--output", default=str(ROOT / "benchmarks" / "quality.md"))
    args = parser.parse_args()
    results = Path(args.results).resolve()
    results.mkdir(parents=True, exist_ok=True)
    if args.run:
        sets = args.sets.split(",") if args.sets else None
        unknown = [s for s in sets or [] if s not in SETS]
        if unknown:
            parser.error(f"unknown set(s) {', '.join(unknown)}; choose from {', '.join(SETS)}")
        run_all(results, args.methods, args.model, sets)
    if args.merge:
        for line in merge_results(results, Path(args.merge)) or [f"nothing in {args.merge} to merge"]:
            print(line)
    Path(args.output).write_text(report(results))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
