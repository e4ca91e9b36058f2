"""What the web app does, without the web page: reading the user's gap list, checking uploads, the
spectrogram pictures, the "regenerated part alone" track, and one job at a time through a `Restorer`.

Nothing here imports Gradio, so it is tested without it; `a2sb.app.ui` puts a page on top.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import A2SBError
from ..plan import Plan, format_time, parse_cutoff, parse_gaps
from ..restorer import Cancelled, Restorer

BUNDLED = "bundled"
DOWNMIX = True  # as `a2sb restore`: a file of more than two channels is mixed down to mono (and told so)
DEFAULT_MAX_MB = 200.0
DYNAMIC_RANGE_DB = 100.0  # spectrogram colour scale: the loudest cell of either picture and this far below
PLAYABLE = {".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus"}  # the browsers' own players take these as they are




# ------------------------------------------------------------------------------------------ gap lists

def parse_gap_list(text: str | None) -> list[tuple[float, float]]:
    """[(start, end)] seconds, sorted, from the gap box: "0:12.0-0:12.3, 1:04.5-1:04.8" (or plain seconds,
    as `a2sb restore --gaps` takes them); empty or "none" -> no gaps."""
    gaps = parse_gaps(text or "")
    if gaps == "auto":
        raise A2SBError("write the gaps to fill as START-END, e.g. 0:12.0-0:12.3, 1:04.5-1:04.8")
    return sorted(gaps or [])


def format_gap_list(gaps) -> str:
    """The gap box's text for `gaps`: M:SS.ss-M:SS.ss, ... (what `parse_gap_list` reads back, to 5 ms)."""
    return ", ".join(f"{format_time(s)}-{format_time(e)}" for s, e in gaps)


# --------------------------------------------------------------------------------------------- uploads

def check_upload(path: str | os.PathLike, max_mb: float) -> None:
    """Refuse a file over the size limit before anything reads it (the CLI's checks come after)."""
    size = os.path.getsize(path)
    if size > max_mb * 1e6:
        raise A2SBError(f"{Path(path).name} is {size / 1e6:.1f} MB; this app takes files up to {max_mb:g} MB "
                        "(start it with --max-size-mb to change that)")


def one_line(err: BaseException) -> str:
    """The message shown in the page for a failure: A2SBError's own line (as the CLI prints it), anything
    else as its type and first line, never a traceback."""
    if isinstance(err, A2SBError):
        return f"error: {err}"
    text = str(err).strip().splitlines()
    return f"error: unexpected {type(err).__name__}" + (f": {text[-1]}" if text else "")


# ----------------------------------------------------------------------------------------- pictures

def spectrogram_scale(*levels: np.ndarray) -> tuple[float, float]:
    """One colour scale for every picture: from DYNAMIC_RANGE_DB below the loudest cell of any to it."""
    top = max(float(np.max(level)) for level in levels)
    return top - DYNAMIC_RANGE_DB, top


def spectrogram_pictures(before, after, folder, *, cutoff=None, gaps=()) -> tuple[Path, Path, tuple[float, float]]:
    """PNGs of the input and output spectrograms (0-22 kHz, dB) with the same colour scale, and that scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from ..plot import TOP_HZ, spectrogram_db

    panels = [("input", before, spectrogram_db(before)), ("restored", after, spectrogram_db(after))]
    vmin, vmax = spectrogram_scale(*(p[2][2] for p in panels))
    pictures = []
    for title, path, (times, freqs, level) in panels:
        fig, ax = plt.subplots(figsize=(6.4, 3.6), constrained_layout=True)
        extent = (times[0], times[-1] if len(times) > 1 else times[0] + 1e-3, freqs[0], freqs[-1])
        image = ax.imshow(level, origin="lower", aspect="auto", extent=extent, vmin=vmin, vmax=vmax,
                          cmap="magma", interpolation="nearest")
        ax.set_ylim(0, TOP_HZ)
        ax.set_xlabel("time (s)")
        ax.set_ylabel("frequency (Hz)")
        ax.set_title(f"{title}: {Path(path).name}", fontsize=10)
        outline = dict(fill=False, edgecolor="cyan", linewidth=1.0, linestyle="--")
        if cutoff is not None:
            ax.add_patch(Rectangle((extent[0], cutoff), extent[1] - extent[0], TOP_HZ - cutoff, **outline))
        for start, end in gaps:
            ax.add_patch(Rectangle((start, 0), end - start, TOP_HZ, **outline))
        fig.colorbar(image, ax=ax, label="dB")
        png = Path(folder) / f"spectrogram-{title}.png"
        fig.savefig(png, dpi=100)
        plt.close(fig)
        pictures.append(png)
    return pictures[0], pictures[1], (vmin, vmax)


# ------------------------------------------------------------------------------------------- tracks

def write_difference(input_path, output_path, dest, gain: float = 1.0) -> Path:
    """The regenerated part alone: restored minus input (resampled to the output's rate) times `gain`, the
    gain the restorer applied to the whole output so that it does not clip (else the difference would hold
    that much of all the music); FLAC at the output's rate, clipped at full scale."""
    import soundfile as sf

    from ..audio import read_audio

    restored, rate = sf.read(str(output_path), dtype="float32", always_2d=True)
    original, _ = read_audio(str(input_path), sample_rate=rate)
    original = original.T
    if original.shape[1] != restored.shape[1]:  # more than two channels, restored as their mix
        original = original.mean(axis=1, keepdims=True)
    n = min(len(restored), len(original))
    diff = restored.copy()
    diff[:n] -= np.float32(gain) * original[:n]
    sf.write(str(dest), np.clip(diff, -1.0, 1.0), rate, subtype="PCM_24", format="FLAC")
    return Path(dest)


def playable(path, dest_folder) -> Path:
    """The file itself when browsers play its format, else a FLAC copy in `dest_folder`."""
    path = Path(path)
    if path.suffix.lower() in PLAYABLE:
        return path
    import soundfile as sf

    from ..audio import read_audio

    audio, rate = read_audio(str(path), sample_rate=None)
    dest = Path(dest_folder) / f"{path.stem}.input.flac"
    sf.write(str(dest), np.clip(audio.T, -1.0, 1.0), rate, subtype="PCM_24", format="FLAC")
    return dest


# --------------------------------------------------------------------------------------------- jobs

@dataclass
class Result:
    output: Path
    text: str
    before_png: Path
    after_png: Path
    scale: tuple[float, float]
    input_player: Path
    difference: Path


@dataclass
class Upload:
    name: str
    path: Path
    plan: Plan | None = None
    error: str = ""

    def found(self) -> str:
        """What the analysis found (the plan's findings and warnings), or the upload's error."""
        if self.plan is None:
            return self.error
        return "\n".join([*self.plan.findings, *(f"warning: {w}" for w in self.plan.warnings)])


@dataclass
class AppCore:
    """The app's state that outlives a page: the work folder, the models, and the one running job.

    `models` maps the names shown in the model menu to what `Restorer(model=...)` takes. Restorers are
    made as `a2sb restore` makes its own (files of more than two channels mixed down to mono), one per
    model, quality and seed, sharing each model once loaded."""

    work: Path
    models: dict[str, str] = field(default_factory=lambda: {BUNDLED: "default"})
    device: str | None = None
    max_mb: float = DEFAULT_MAX_MB

    def __post_init__(self):
        self.work = Path(self.work)
        self._restorers: dict[tuple[str, str, int], Restorer] = {}
        self._job = threading.Lock()
        self.cancel = threading.Event()
        self._notes: list[str] = []
        self._planner = Restorer(downmix=DOWNMIX)  # analysis only: never loads a model

    def restorer(self, model: str, quality: str, seed: int) -> Restorer:
        if model not in self.models:
            raise A2SBError(f"unknown model '{model}' (choose from {', '.join(self.models)})")
        key = (model, quality, int(seed))  # (Restorer checks the quality)
        if key not in self._restorers:
            loaded = next((r for k, r in self._restorers.items() if k[0] == model and r._model is not None), None)
            source, device = (loaded.model, None) if loaded else (self.models[model], self.device)
            self._restorers[key] = Restorer(source, device=device, quality=quality, seed=int(seed),
                                            downmix=DOWNMIX, on_warning=self._notes.append)
        return self._restorers[key]

    def analyse(self, paths) -> list[Upload]:
        """Each uploaded file checked and analysed (detection only, no model); a bad one carries its
        one-line error instead of a plan."""
        uploads = []
        for path in paths or []:
            path = Path(path)
            upload = Upload(path.name, path)
            try:
                check_upload(path, self.max_mb)
                upload.plan = self._planner.analyse(path)
            except Exception as err:  # shown in the page as one line
                upload.error = one_line(err)
            uploads.append(upload)
        return uploads

    def restore(self, upload: Upload, *, cutoff_on: bool, cutoff_hz, gaps, quality: str, model: str,
                seed: int = 0, progress=None, holes: bool | None = None) -> Result:
        """Restore one upload (one job at a time; others wait). The detected plan is used as it is when the
        user kept it (the CLI's defaults: the same output); an edited one is planned as
        `a2sb restore --cutoff HZ|off --gaps LIST|off` would plan it. `gaps`: (start, end) pairs or the text
        of the gap box; `holes` (codec holes): None keeps the plan's choice, False turns the repair off,
        True repairs whatever holes are found."""
        if upload.plan is None:
            raise A2SBError(upload.error or f"{upload.name} was not analysed")
        cutoff = parse_cutoff(cutoff_hz) if cutoff_on else None
        if cutoff_on and not isinstance(cutoff, float):
            raise A2SBError(f"cutoff must be a frequency in Hz, got '{cutoff_hz or ''}'")
        gaps = parse_gap_list(gaps) if isinstance(gaps, str) or gaps is None else [tuple(map(float, g)) for g in gaps]
        plan = upload.plan
        holes = plan.holes if holes is None else bool(holes)
        if cutoff != plan.cutoff_hz or gaps != list(plan.gaps):
            plan = self._planner.analyse(upload.path, cutoff=cutoff, gaps=gaps or None,
                                         holes="auto" if holes == plan.holes else holes)
        elif holes != plan.holes:
            plan = self._planner.analyse(upload.path, holes=holes)
        with self._job:
            restorer = self.restorer(model, quality, seed)
            self.cancel.clear()
            self._notes.clear()
            folder = Path(tempfile.mkdtemp(prefix="job-", dir=self.work))
            output = folder / restorer.default_output_path(upload.path).name
            try:
                report = restorer.restore_file(upload.path, output, plan=plan, progress=progress,
                                               cancel=self.cancel)
            except BaseException:
                shutil.rmtree(folder, ignore_errors=True)
                raise
            before, after, scale = spectrogram_pictures(upload.path, report.output, folder, cutoff=plan.cutoff_hz,
                                                        gaps=plan.gaps)
            difference = write_difference(upload.path, report.output, folder / f"{upload.path.stem}.regenerated.flac",
                                          report.gain)
            lines = [plan.describe(), *(f"warning: {w}" for w in plan.warnings), "  " + report.describe(),
                     *(f"warning: {w}" for w in [*report.warnings, *self._notes])]
            text = "\n".join(lines).replace(str(folder) + os.sep, "").replace(str(upload.path.parent) + os.sep, "")
            return Result(report.output, text, before, after, scale, playable(upload.path, folder), difference)

    def close(self) -> None:
        shutil.rmtree(self.work, ignore_errors=True)


__all__ = ["AppCore", "Cancelled", "Result", "Upload", "parse_gap_list", "format_gap_list",
           "check_upload", "one_line", "spectrogram_scale", "spectrogram_pictures", "write_difference"]
