"""TEMPORARY stand-in for `a2sb.Restorer` (being written on the `restore` branch), built on today's
`a2sb.pipeline`; only what the web app uses. Delete this file once `a2sb.restorer` is merged: `a2sb.app`
imports the real one when it exists.

Progress and cancelling hook the pipeline's tqdm bar (`pipeline._progress_bar`) for the length of one
call; the app runs one job at a time, so the swap is not shared between jobs.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import A2SBError

LOSSLESS_KEEP = {".wav": "wav", ".flac": "flac"}


class Cancelled(A2SBError):
    """The restoration was cancelled; no output was left behind."""


def _clock(seconds: float) -> str:
    minutes, rest = divmod(seconds, 60.0)
    return f"{int(minutes)}:{rest:05.2f}"


@dataclass(frozen=True)
class Plan:
    input_path: str
    sample_rate: int
    channels: int
    frames: int
    cutoff_hz: float | None
    gaps: list[tuple[float, float]] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate

    def describe(self) -> str:
        lines = [f"{Path(self.input_path).name}: {self.duration:.2f} s, {self.sample_rate} Hz, "
                 f"{self.channels} channel{'s' if self.channels != 1 else ''}"]
        lines += [f"  found: {line}" for line in self.findings]
        todo = []
        if self.cutoff_hz is not None:
            todo.append(f"regenerate above {self.cutoff_hz / 1000:.1f} kHz")
        if self.gaps:
            todo.append(f"fill {len(self.gaps)} gap{'s' if len(self.gaps) != 1 else ''}")
        lines.append("  plan: " + (", ".join(todo) if todo else "nothing to restore (output = input)"))
        return "\n".join(lines)


@dataclass
class Report:
    output: Path
    plan: Plan
    peak: float

    def describe(self) -> str:
        done = []
        if self.plan.cutoff_hz is not None:
            done.append(f"regenerated the band above {self.plan.cutoff_hz / 1000:.1f} kHz")
        for start, end in self.plan.gaps:
            done.append(f"filled {_clock(start)}-{_clock(end)}")
        return (f"wrote {self.output}\n  " + ("; ".join(done) if done else "copied (nothing to restore)")
                + f"\n  output peak {self.peak:.3f}")


QUALITY = ("fast", "default", "best")


class Restorer:
    def __init__(self, model="default", device=None, quality: str = "default", seed: int = 0):
        from .. import pipeline

        if quality not in QUALITY:
            raise A2SBError(f"quality must be one of {', '.join(QUALITY)}, got '{quality}'")
        self.model = pipeline.resolve_model(model, "auto" if device is None else device)
        base = int(self.model.default_steps)
        self.steps = {"fast": max(2, base - 1), "default": base, "best": 2 * base}[quality]
        self.steps = None if quality == "default" else self.steps
        self.seed = int(seed)

    def analyse(self, path, cutoff="auto", gaps="auto") -> Plan:
        import warnings

        from .. import pipeline

        path = str(path)
        info = pipeline._check_input(path, downmix=False)
        cutoff, gaps = pipeline.parse_cutoff(cutoff), pipeline.parse_gaps(gaps)
        chunk = int(pipeline.DETECT_CHUNK_SECONDS * info.sample_rate)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", pipeline.A2SBWarning)
            analysis = pipeline.analyse(pipeline._chunks_of_file(path, chunk, False), info.channels,
                                        info.sample_rate, info.frames, want_cutoff=cutoff == "auto",
                                        want_gaps=gaps == "auto", name=Path(path).name)
            pipeline._report(analysis, Path(path).name)
            cutoff, gaps = pipeline._prepare(analysis, cutoff, gaps, path)
        findings = []
        if analysis.cutoff is not None and analysis.cutoff < pipeline.SAMPLE_RATE / 2:
            findings.append(f"lowpass at {analysis.cutoff / 1000:.1f} kHz")
        if analysis.gaps:
            findings.append(f"{len(analysis.gaps)} dropout{'s' if len(analysis.gaps) != 1 else ''} at "
                            + ", ".join(f"{_clock(s)}-{_clock(e)}" for s, e in analysis.gaps))
        if analysis.clipped:
            findings.append(f"clipped: {analysis.clipped} samples at full scale (peak {analysis.peak:.3f}); "
                            "clipping is not repaired")
        findings += [str(w.message) for w in caught if "clipped" not in str(w.message)
                     and "nothing to restore" not in str(w.message)]
        return Plan(path, info.sample_rate, info.channels, analysis.frames, cutoff, list(gaps), findings)

    def default_output_path(self, path) -> Path:
        path = Path(path)
        return path.with_name(f"{path.stem}.restored.{LOSSLESS_KEEP.get(path.suffix.lower(), 'flac')}")

    def restore_file(self, path, output=None, *, plan: Plan | None = None, format=None, overwrite=False,
                     progress=None, cancel: threading.Event | None = None) -> Report:
        import soundfile as sf

        from .. import pipeline

        plan = plan or self.analyse(path)
        output = Path(output) if output is not None else self.default_output_path(path)
        if format is not None:
            output = output.with_suffix("." + format)

        class Bar:
            def __init__(self, total: int):
                self.total, self.done = total, 0

            def update(self, n: int) -> None:
                if cancel is not None and cancel.is_set():
                    raise Cancelled("cancelled")
                self.done += n
                if progress is not None:
                    progress(self.done, self.total)

            def close(self) -> None:
                pass

        original = pipeline._progress_bar
        pipeline._progress_bar = lambda total, opts: Bar(total)
        try:
            pipeline.restore(path, output, cutoff=plan.cutoff_hz, gaps=list(plan.gaps) or None, model=self.model,
                             steps=self.steps, seed=self.seed, batch_size="auto", overwrite=overwrite,
                             progress=True)
        finally:
            pipeline._progress_bar = original
        if cancel is not None and cancel.is_set():
            output.unlink(missing_ok=True)
            raise Cancelled("cancelled")
        data, _ = sf.read(str(output), dtype="float32", always_2d=True)
        return Report(output, plan, float(abs(data).max()) if data.size else 0.0)


__all__ = ["Restorer", "Plan", "Report", "Cancelled"]
