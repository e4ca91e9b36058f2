"""What a restoration will do: the `Plan` (cutoff, gaps, codec holes, what the analysis found), and the
one place where the damage a user names is parsed and checked (`parse_cutoff`, `parse_gaps`,
`parse_holes`, `check_plan`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .audio import SAMPLE_RATE
from .errors import A2SBError

LONG_GAP_SECONDS = 1.0  # the model was trained on gaps up to about this long
LISTED_GAPS = 6  # gaps named in a description; the rest are counted
LOSSLESS_COPY = "in a lossless file"  # Plan.codec of a lossless file the analysis calls a lossy decode


@dataclass(frozen=True)
class Plan:
    """A restoration's plan: regenerate the band above `cutoff_hz` (None: no band), fill `gaps`
    ([(start_s, end_s)], sorted, not overlapping) and, with `holes`, regenerate the codec holes
    (`a2sb.holes`) below `hole_top_hz` (the detected band limit; None: the whole band) of the input
    described by the other fields. `codec` names the lossy codec the analysis found ("" for none),
    `hole_share` the share of holes it measured (None: not measured). `findings` say what the analysis
    found (in words), `warnings` what the user should know. Edit a plan with dataclasses.replace; the
    edited values are checked when it is used."""

    input_path: str | None
    sample_rate: int
    channels: int
    frames: int
    cutoff_hz: float | None
    gaps: list[tuple[float, float]] = field(default_factory=list)
    findings: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    peak: float = 0.0  # of the input (linear)
    holes: bool = False
    hole_share: float | None = None
    codec: str = ""
    hole_top_hz: float | None = None

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate

    @property
    def name(self) -> str:
        return "the audio" if self.input_path is None else str(self.input_path)

    def nothing_to_do(self) -> bool:
        return self.cutoff_hz is None and not self.gaps and not self.holes

    @property
    def hole_stop_hz(self) -> float | None:
        """The top of the band whose holes are regenerated: the detected band limit or the cutoff,
        whichever is lower (None: the whole band)."""
        tops = [f for f in (self.hole_top_hz, self.cutoff_hz) if f is not None]
        return min(tops) if tops else None

    def describe(self) -> str:
        """The lines the CLI prints before the work: the input, then what was found and will be done."""
        layout = {1: "mono", 2: "stereo"}.get(self.channels, f"{self.channels} channels")
        head = f"{self.name}: {format_time(self.duration, 1)}, {self.sample_rate / 1000:g} kHz {layout}"
        return "\n".join([head, *(f"  {line}" for line in self.findings)])


def format_time(seconds: float, decimals: int = 2) -> str:
    """0:12.30, 1:04.50, 1:02:03.00: minutes (and hours) and seconds."""
    scale = 10**decimals
    total = round(seconds * scale)
    whole, part = divmod(total, scale)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{secs:02d}" + (f".{part:0{decimals}d}" if decimals else "")
    return f"{hours}:{minutes:02d}:{text}" if hours else f"{minutes}:{text}"


def format_gaps(gaps: list[tuple[float, float]]) -> str:
    shown = ", ".join(f"{format_time(s)}-{format_time(e)}" for s, e in gaps[:LISTED_GAPS])
    more = len(gaps) - LISTED_GAPS
    return shown + (f" and {more} more" if more > 0 else "")


def parse_time(text: str) -> float:
    """Seconds from "12.5", "0:12.5" or "1:02:03.5"; an A2SBError for anything else."""
    parts = text.strip().split(":")
    try:
        if len(parts) > 3 or not all(p.strip() for p in parts):
            raise ValueError
        values = [float(p) for p in parts]
    except ValueError:
        raise A2SBError(f"'{text.strip()}' is not a time: write seconds (12.5) or minutes:seconds (0:12.5)") from None
    if any(v < 0 or not math.isfinite(v) for v in values) or any(v >= 60 for v in values[1:]):
        raise A2SBError(f"'{text.strip()}' is not a time: write seconds (12.5) or minutes:seconds (0:12.5)")
    seconds = 0.0
    for value in values:
        seconds = seconds * 60 + value
    return seconds


def parse_cutoff(value) -> float | str | None:
    """None/"off"/"none" -> None, "auto" -> "auto", else a positive frequency in Hz."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("off", "none", "")):
        return None
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    try:
        hz = float(value)
    except (TypeError, ValueError):
        raise A2SBError(f"cutoff must be a frequency in Hz, 'auto' or 'off', got '{value}'") from None
    if not math.isfinite(hz) or hz <= 0:
        raise A2SBError(f"cutoff must be a positive frequency in Hz, got {value}")
    return hz


def parse_holes(value) -> bool | str:
    """"auto" -> "auto"; None/False/"off"/"none" -> False; True/"on" -> True (repair whatever is found)."""
    if value is None or value is False:
        return False
    if value is True:
        return True
    text = str(value).strip().lower()
    if text in ("off", "none", ""):
        return False
    if text in ("auto", "on"):
        return text if text == "auto" else True
    raise A2SBError(f"holes must be 'auto' or 'off', got '{value}'")


def parse_gaps(value) -> list[tuple[float, float]] | str | None:
    """None/"off" -> None, "auto" -> "auto"; "12.0-12.4,0:30.1-0:31.0" or [(start, end), ...] (seconds)
    -> a list of (start, end)."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("off", "none", ""):
            return None
        if text == "auto":
            return "auto"
        gaps = []
        for part in text.split(","):
            start, sep, end = part.strip().partition("-")
            if not sep:
                raise A2SBError(f"gap '{part.strip()}' must be START-END (e.g. 12.0-12.4 or 0:12.0-0:12.4)")
            gaps.append(_checked_gap(parse_time(start), parse_time(end)))
        return gaps
    gaps = []
    for pair in value:
        try:
            start, end = (float(v) for v in pair)
        except (TypeError, ValueError):
            shown = " ".join(map(str, pair)) if isinstance(pair, (list, tuple)) else str(pair)
            raise A2SBError(f"each gap must be two times (start, end) in seconds, got '{shown}'") from None
        gaps.append(_checked_gap(start, end))
    return gaps


def _checked_gap(start: float, end: float) -> tuple[float, float]:
    if not (math.isfinite(start) and math.isfinite(end)) or start < 0 or end <= start:
        raise A2SBError(f"gap {start:g}-{end:g} s is invalid: need 0 <= start < end")
    return float(start), float(end)


def check_gaps(gaps, duration: float, name: str = "the audio") -> list[tuple[float, float]]:
    """Sorted gaps, with clear errors for gaps outside the audio or overlapping each other; touching
    gaps are merged."""
    gaps = sorted(parse_gaps(list(gaps)) or [])
    for start, end in gaps:
        if end > duration + 1e-6:
            raise A2SBError(f"gap {start:g}-{end:g} s lies outside {name} ({duration:.3f} s long)")
    for (s0, e0), (s1, e1) in zip(gaps, gaps[1:]):
        if s1 < e0:
            raise A2SBError(f"gaps {s0:g}-{e0:g} s and {s1:g}-{e1:g} s overlap")
    merged: list[tuple[float, float]] = []
    for start, end in gaps:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, min(end, duration)))
    return merged


def check_cutoff(cutoff, input_rate: int, name: str = "the audio") -> float | None:
    """A cutoff (Hz or None) that can be restored for audio at `input_rate`, or an A2SBError."""
    cutoff = parse_cutoff(cutoff)
    if cutoff is None:
        return None
    if cutoff == "auto":
        raise A2SBError("a plan's cutoff must be a frequency in Hz or None, not 'auto'")
    if cutoff >= SAMPLE_RATE / 2:
        raise A2SBError(f"cutoff {cutoff:g} Hz is at or above the Nyquist frequency ({SAMPLE_RATE / 2:g} Hz) "
                        "of the 44.1 kHz representation: nothing to extend")
    if cutoff > input_rate / 2:
        raise A2SBError(f"cutoff {cutoff:g} Hz is above the Nyquist frequency of {name} "
                        f"({input_rate / 2:g} Hz at {input_rate} Hz)")
    return float(cutoff)


def check_plan(plan: Plan) -> Plan:
    """The plan with its cutoff and gaps checked against its audio (after a user's edits)."""
    import dataclasses

    cutoff = check_cutoff(plan.cutoff_hz, plan.sample_rate, plan.name)
    gaps = check_gaps(plan.gaps, plan.duration, plan.name)
    holes = parse_holes(plan.holes)
    if holes == "auto":
        raise A2SBError("a plan's holes must be True or False, not 'auto'")
    return dataclasses.replace(plan, cutoff_hz=cutoff, gaps=gaps, holes=holes)


def damage_findings(cutoff: float | None, gaps: list[tuple[float, float]], cutoff_auto: bool,
                    gaps_auto: bool, note: str = "", *, codec: str = "", holes: bool = False,
                    hole_share: float | None = None, holes_auto: bool = True,
                    hole_top: float | None = None) -> list[str]:
    """The plan's lines on what will be regenerated, in words. `note` is the detector's description of
    the band limit it found (detect.CutoffEstimate.note, e.g. "brick-wall lowpass at 16.0 kHz (MP3-like)",
    "gentle roll-off from about 9.8 kHz (...): not regenerated; pass --cutoff ..."), used when the cutoff
    was detected. `codec` names a lossy codec ("MP3, 128 kbit/s"; "" for none), `hole_share` the
    measured share of codec holes (None: not measured) below `hole_top` Hz (None: the whole band),
    `holes` whether they are regenerated, `holes_auto` whether that was decided by the analysis (else
    given)."""
    lines = []
    head = f"lossy codec ({codec}): " if codec else ""
    band = None  # the cutoff line's band limit, in words
    if cutoff is not None:
        band = note if cutoff_auto and note else f"lowpass at {cutoff / 1000:.1f} kHz"
        band += "" if cutoff_auto else " (given)"
    elif cutoff_auto:
        band = note or "full band"
    # the codec holes, in words (where = the band they were looked for in)
    if band is not None and (cutoff is not None or hole_top is not None):
        where = " of the band below it"
    elif hole_top is not None:
        where = f" of the band below {hole_top / 1000:.1f} kHz"
    else:
        where = " of the band"
    given = "" if holes_auto else " (given)"
    if hole_share is not None:
        found = f"holes in {100 * hole_share:.1f} %{where}"
    elif holes:
        found = "holes"
    else:
        found = "holes" if codec and not holes_auto else ""
    if band is not None and cutoff is not None:
        if holes:
            lines.append(f"{head}{band}; {found}{given}: the band above and the holes are regenerated")
        elif found:
            lines.append(f"{head}{band}: the band above it is regenerated; {found}"
                         + (": " if hole_share is not None else " ") + f"left as they are{given}")
        else:
            lines.append(f"{head}{band}: the band above it is regenerated")
    else:
        parts = [band] if band is not None else []
        if found:
            parts.append(f"{found}{given}: regenerated" if holes else
                         f"{found}{': ' if hole_share is not None else ' '}left as they are{given}")
        if parts:
            lines.append(head + "; ".join(parts))
        elif head:
            lines.append(head.rstrip(": "))
    if gaps:
        word = "dropout" if gaps_auto else "gap"
        lines.append(f"{len(gaps)} {word}{'s' if len(gaps) > 1 else ''} at {format_gaps(gaps)}"
                     + ("" if gaps_auto else " (given)") + ": filled")
    elif gaps_auto:
        lines.append("no dropouts")
    if cutoff is None and not gaps and not holes:
        lines.append("nothing to restore")
    return lines


def gap_warnings(gaps: list[tuple[float, float]]) -> list[str]:
    long = [(s, e) for s, e in gaps if e - s > LONG_GAP_SECONDS + 1e-9]
    if not long:
        return []
    return [f"{len(long)} gap{'s' if len(long) > 1 else ''} longer than {LONG_GAP_SECONDS:g} s "
            f"({format_gaps(long)}): the model fills gaps up to about {LONG_GAP_SECONDS:g} s well; they are "
            "filled all the same and may sound wrong"]
