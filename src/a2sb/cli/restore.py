"""`a2sb restore` (files and folders) and `a2sb info`.

Nothing heavy is imported while the parser is built: the commands import the restorer when they run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import A2SBError, OutputExists

QUALITY_HELP = "fast: half the network calls; best: twice as many (slower)"


def add_parser(sub) -> None:
    p = sub.add_parser(
        "restore", help="restore music files: regenerate a lost high band and codec holes, fill dropouts",
        formatter_class=_Help,
        description="Restore music: regenerate the band a lowpass filter (or a lossy encoder) removed and the\n"
                    "holes a lossy encoder left below it, and fill dropouts. By default all are detected; what\n"
                    "was found is printed before the work and what was done after it. The output has the\n"
                    "input's rate, format and tags, and never clips (a loud result is lowered and the gain\n"
                    "reported).",
        epilog="examples:\n"
               "  a2sb restore song.mp3                      # writes song.restored.flac\n"
               "  a2sb restore old.wav --cutoff 4000 --plot\n"
               "  a2sb restore ALBUM --out-dir OUT --recursive --skip-existing\n"
               "  a2sb restore ARCHIVE --out-dir OUT --shard 3/8   # files 3, 11, 19, ... of the sorted list")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="audio files (anything libsndfile reads: WAV, FLAC, MP3, Ogg, AIFF, ...) or folders of them")
    what = p.add_argument_group("what to restore")
    what.add_argument("--cutoff", default="auto", metavar="HZ",
                      help="regenerate everything above this frequency; 'auto' detects it, 'off' keeps the band")
    what.add_argument("--gaps", default="auto", metavar="TIMES",
                      help="dropouts to fill, e.g. '12.0-12.4,1:04.5-1:04.8' (seconds or minutes:seconds); "
                           "'auto' detects them, 'off' fills none")
    what.add_argument("--holes", choices=("auto", "off"), default="auto",
                      help="codec holes (cells a lossy encoder left empty below its cutoff): 'auto' regenerates "
                           "them in a lossy decode where they are at least 3 %% of the band")
    what.add_argument("--dry-run", action="store_true", help="only print what would be restored")
    out = p.add_argument_group("output")
    where = out.add_mutually_exclusive_group()
    where.add_argument("-o", "--output", metavar="FILE",
                       help="output file (one input only); default: NAME.restored.EXT beside the input")
    where.add_argument("--out-dir", metavar="FOLDER", help="folder for the outputs (created if missing)")
    out.add_argument("--format", choices=("flac", "wav", "aiff"), default=None,
                     help="output format; default: the input's (lossy inputs: flac)")
    existing = out.add_mutually_exclusive_group()
    existing.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    existing.add_argument("--skip-existing", action="store_true", help="skip inputs whose output exists")
    out.add_argument("--plot", action="store_true", help="also write a PNG of the spectrograms before and after")
    many = p.add_argument_group("folders")
    many.add_argument("--recursive", action="store_true",
                      help="also restore the files in subfolders (mirrored under --out-dir)")
    many.add_argument("--shard", type=_shard, metavar="K/N", default=None,
                      help="restore only files K, K+N, K+2N, ... (from 0) of the sorted list, to split "
                           "an archive over N machines")
    how = p.add_argument_group("how")
    how.add_argument("--quality", choices=("fast", "default", "best"), default="default", help=QUALITY_HELP)
    how.add_argument("--model", default="default",
                     help="bundled model name, model folder, or a released .ckpt file")
    how.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto",
                     help="where the network runs (auto: a GPU if there is one)")
    how.add_argument("--seed", type=int, default=0,
                     help="seed of the random numbers the model starts from: the same seed gives the same "
                          "output, another seed another plausible one")
    p.set_defaults(func=_restore_command)

    p = sub.add_parser("info", help="what `a2sb restore` would find and do (no model needed)",
                       description="Print the plan `a2sb restore --dry-run` prints, without loading a model.")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--json", action="store_true", help="print one JSON object per file")
    p.set_defaults(func=_info_command)


class _Help(argparse.RawDescriptionHelpFormatter):
    """Description and examples as written; "(default: ...)" after the options that have one."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.option_strings and action.default not in (None, False, argparse.SUPPRESS):
            text += " (default: %(default)s)"
        return text


def _shard(text: str) -> tuple[int, int]:
    k, sep, n = text.partition("/")
    try:
        k, n = int(k), int(n)
    except ValueError:
        k, n = -1, 0
    if not sep or n < 1 or not 0 <= k < n:
        raise argparse.ArgumentTypeError(f"expected K/N with 0 <= K < N, got '{text}'")
    return k, n


def _warning(message: str) -> None:
    _print(f"a2sb: warning: {message}", err=True)


_bar = None  # the overall progress bar, when one is shown (messages are written above it)


def _print(text: str, err: bool = False) -> None:
    stream = sys.stderr if err else sys.stdout
    if _bar is not None:
        _bar.write(text, file=stream)
    else:
        print(text, file=stream)


def find_inputs(items: list[str], recursive: bool) -> list[tuple[Path, Path]]:
    """(file, folder it was found under or its own folder) for every input, files of folders sorted."""
    from ..audio import AUDIO_EXTENSIONS

    found = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            files = sorted(p for p in path.glob(pattern)
                           if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS and ".restored." not in p.name
                           and not any(part.startswith(".") for part in p.relative_to(path).parts))
            if not files:
                raise A2SBError(f"no audio files in folder {path}")
            found += [(f, path) for f in files]
        elif not path.exists():
            raise A2SBError(f"no such file: {path}")
        else:
            found.append((path, path.parent))
    return found


def _restore_command(args) -> int:
    global _bar
    from ..analysis import check_input
    from ..restorer import Restorer

    found = find_inputs(args.inputs, args.recursive)
    if args.shard is not None:
        k, n = args.shard
        found = found[k::n]
        if not found:
            print(f"shard {k}/{n}: no files")
            return 0
    if args.output and len(found) > 1:
        raise A2SBError(f"-o/--output takes one input, got {len(found)}; use --out-dir")
    restorer = Restorer(args.model, device=args.device, quality=args.quality, seed=args.seed, downmix=True,
                        on_warning=_warning)
    single = len(found) == 1
    jobs, failed, skipped = [], [], 0
    for path, root in found:  # everything that can be checked is checked before any work
        try:
            check_input(str(path), downmix=True)
            output = _output_for(restorer, path, root, args)
            if args.skip_existing and output.exists():
                skipped += 1
                continue
            if not args.dry_run:
                _check(restorer, path, output, args)
            jobs.append((path, output))
        except A2SBError as err:
            if single:
                raise
            failed.append(path)
            _print(f"a2sb: error: {err}", err=True)
    outputs = [output for _, output in jobs]
    if len({o.resolve() for o in outputs}) < len(outputs):
        raise A2SBError("two inputs would be written to the same output; use different names")
    _bar = _overall_bar(jobs) if not args.dry_run and len(jobs) > 1 else None
    try:
        for path, output in jobs:
            try:
                _restore_one(restorer, path, output, args)
            except A2SBError as err:
                if single:
                    raise
                failed.append(path)
                _print(f"a2sb: error: {err}", err=True)
    finally:
        if _bar is not None:
            _bar.close()
            _bar = None
    if not single:
        done = len(jobs) - len([f for f in failed if any(f == p for p, _ in jobs)])
        summary = f"{done} restored" if not args.dry_run else f"{done} planned"
        summary += f", {skipped} skipped (output exists)" if skipped else ""
        summary += f", {len(failed)} failed: {', '.join(str(f) for f in failed)}" if failed else ""
        _print(summary)
    return 2 if failed else 0


def _output_for(restorer, path: Path, root: Path, args) -> Path:
    if args.output:
        return Path(args.output)
    out_dir = None
    if args.out_dir:
        out_dir = Path(args.out_dir) / path.parent.relative_to(root)  # subfolders mirrored
    return restorer.default_output_path(path, args.format, out_dir)


def _check(restorer, path: Path, output: Path, args) -> None:
    folder = output.parent if str(output.parent) else Path(".")
    if args.out_dir:  # created if missing (not for -o: a typo there must not make folders)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise A2SBError(f"cannot create output folder {folder}: {err.strerror or err}") from None
    try:
        restorer.check_output(path, output, args.overwrite, args.format, args.plot)
    except OutputExists as err:  # the same refusal in the CLI's words
        hint = "use --overwrite to replace it" + ("" if err.what == "plot" else ", or --skip-existing")
        raise OutputExists(err.path, err.what, hint) from None


def _restore_one(restorer, path: Path, output: Path, args) -> None:
    plan = restorer.analyse(path, args.cutoff, args.gaps, args.holes)
    _print(plan.describe())
    for message in plan.warnings:
        _warning(message)
    if args.dry_run:
        return
    progress = _file_progress(plan.duration)
    report = restorer.restore_file(path, output, plan=plan, format=args.format, overwrite=args.overwrite,
                                   progress=progress, plot=args.plot)
    progress.finish()
    _print("  " + report.describe())
    for message in report.warnings:
        _warning(message)


def _overall_bar(jobs):
    import soundfile as sf
    from tqdm import tqdm

    total = sum(sf.info(str(path)).duration for path, _ in jobs)
    return tqdm(total=round(total, 1), unit="s", desc=f"{len(jobs)} files", dynamic_ncols=True, disable=None,
                bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s of audio [{elapsed}<{remaining}]")


class _file_progress:
    """Moves the progress bar (overall for folders, one per file otherwise) by the share of a file done."""

    def __init__(self, duration: float):
        global _bar
        self.duration, self.shown, self.own = duration, 0.0, _bar is None
        if self.own:
            from tqdm import tqdm

            _bar = tqdm(total=100, unit="%", desc="restoring", dynamic_ncols=True, disable=None, leave=False)
            self.duration = 100.0

    def __call__(self, done: int, total: int) -> None:
        target = self.duration * done / max(total, 1)
        if _bar is not None and target > self.shown:
            _bar.update(target - self.shown)
            self.shown = target

    def finish(self) -> None:
        global _bar
        self(1, 1)
        if self.own and _bar is not None:
            _bar.close()
            _bar = None


def _info_command(args) -> int:
    import json

    from ..analysis import plan_file

    failed = 0
    for path in args.files:
        try:
            plan = plan_file(path, "auto", "auto", downmix=True)
        except A2SBError as err:
            if len(args.files) == 1:
                raise
            failed += 1
            _print(f"a2sb: error: {err}", err=True)
            continue
        if args.json:
            print(json.dumps({"duration": round(plan.duration, 6), "sample_rate": plan.sample_rate,
                              "channels": plan.channels,
                              "cutoff_hz": None if plan.cutoff_hz is None else round(float(plan.cutoff_hz), 1),
                              "gaps": [[round(s, 4), round(e, 4)] for s, e in plan.gaps],
                              "codec": plan.codec or None, "holes": plan.holes,
                              "hole_share": None if plan.hole_share is None else round(plan.hole_share, 4)}))
            continue
        print(plan.describe())
        for message in plan.warnings:
            _warning(message)
    return 2 if failed else 0
