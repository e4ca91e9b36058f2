"""The web app's helpers without a browser: gap lists, uploads, spectrogram colour scale, the difference
track, cancelling, and `a2sb app` without Gradio."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from a2sb.app.core import (
    AppCore,
    Cancelled,
    check_upload,
    format_gap_list,
    one_line,
    parse_gap_list,
    spectrogram_pictures,
    spectrogram_scale,
    write_difference,
)
from a2sb.errors import A2SBError

ROOT = Path(__file__).resolve().parent.parent
RATE = 44100


def _tone(path: Path, seconds=1.0, channels=2, level=0.5, rate=RATE, subtype="PCM_16") -> Path:
    t = np.arange(int(seconds * rate)) / rate
    mono = level * np.sin(2 * np.pi * 440 * t)
    sf.write(str(path), np.stack([mono] * channels, axis=1), rate, subtype=subtype)
    return path


# ------------------------------------------------------------------------------------------ gap lists

def test_gap_list_both_forms_sorted_and_round_trip():
    gaps = parse_gap_list("1:04.5-1:04.8, 0:12.0-0:12.3,  3-3.5")
    assert np.allclose(gaps, [(3.0, 3.5), (12.0, 12.3), (64.5, 64.8)], rtol=0, atol=1e-9)
    assert format_gap_list(gaps) == "0:03.00-0:03.50, 0:12.00-0:12.30, 1:04.50-1:04.80"
    assert np.allclose(parse_gap_list(format_gap_list(gaps)), gaps, rtol=0, atol=1e-9)
    assert format_gap_list([(3725.0, 3726.25)]) == "1:02:05.00-1:02:06.25"
    assert parse_gap_list("") == [] and parse_gap_list(" none ") == [] and parse_gap_list(None) == []


@pytest.mark.parametrize("text, message", [("12", "must be START-END"), ("12-", "not a time"),
                                           ("3.0-2.0", "need 0 <= start < end"), ("a-b", "not a time"),
                                           ("0:75-0:80", "not a time"), ("auto", "write the gaps")])
def test_gap_list_errors_are_one_line(text, message):
    with pytest.raises(A2SBError, match=message) as err:
        parse_gap_list(text)
    assert "\n" not in str(err.value)


# --------------------------------------------------------------------------------------------- uploads

def test_check_upload_size_limit(tmp_path):
    path = tmp_path / "big.wav"
    path.write_bytes(b"\0" * 1_500_000)
    check_upload(path, max_mb=2)
    with pytest.raises(A2SBError, match=r"big.wav is 1.5 MB; this app takes files up to 1 MB"):
        check_upload(path, max_mb=1)


def test_one_line_never_a_traceback():
    assert one_line(A2SBError("bad thing")) == "error: bad thing"
    assert one_line(ValueError("first\nsecond line")) == "error: unexpected ValueError: second line"
    assert one_line(RuntimeError()) == "error: unexpected RuntimeError"


@pytest.fixture
def core(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    return AppCore(work, device="cpu", max_mb=5)


def test_bad_uploads_carry_the_cli_message(core, tmp_path):
    """Not audio, truncated, too big: refused in one line. Six channels: mixed down to mono, as the CLI does."""
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio")
    surround = _tone(tmp_path / "surround.wav", channels=6)
    cut = tmp_path / "cut.wav"
    data = _tone(tmp_path / "whole.wav").read_bytes()
    cut.write_bytes(data[: len(data) // 2])  # the header promises twice what is there
    big = tmp_path / "big.wav"
    big.write_bytes(b"\0" * 6_000_000)
    good = _tone(tmp_path / "good.flac")
    found = core.analyse([text, surround, cut, big, good])
    errors = [u.error for u in found]
    assert "cannot read audio file" in errors[0] and "notes.wav" in errors[0]
    assert "truncated" in errors[2]
    assert "up to 5 MB" in errors[3]
    for error in errors[:1] + errors[2:4]:
        assert error.startswith("error: ") and "\n" not in error and "Traceback" not in error
    assert [found[i].plan for i in (0, 2, 3)] == [None] * 3
    assert errors[1] == "" and found[1].plan.channels == 1
    assert "6 channels mixed down to mono" in found[1].found()
    assert errors[4] == "" and found[4].plan.channels == 2 and found[4].plan.frames == RATE
    assert "no dropouts" in found[4].found() and "nothing to restore" in found[4].found()


def test_restore_refuses_bad_edits_in_one_line(core, tmp_path):
    upload = core.analyse([_tone(tmp_path / "a.wav", seconds=1.0)])[0]
    common = dict(quality="fast", model="bundled")
    with pytest.raises(A2SBError, match="lies outside"):
        core.restore(upload, cutoff_on=False, cutoff_hz=None, gaps="0:00.5-0:02.0", **common)
    with pytest.raises(A2SBError, match="Nyquist"):
        core.restore(upload, cutoff_on=True, cutoff_hz=30000, gaps="", **common)
    with pytest.raises(A2SBError, match="positive frequency"):
        core.restore(upload, cutoff_on=True, cutoff_hz=-5, gaps="", **common)
    with pytest.raises(A2SBError, match="cutoff must be a frequency in Hz, got ''"):
        core.restore(upload, cutoff_on=True, cutoff_hz=None, gaps="", **common)  # the box left empty
    with pytest.raises(A2SBError, match="unknown model"):
        core.restore(upload, cutoff_on=True, cutoff_hz=8000, gaps="", quality="fast", model="other")
    assert not list(core.work.rglob("*.wav")) and not list(core.work.rglob("*.flac"))


def test_cancel_stops_the_job_and_leaves_no_output(core, tmp_path):
    upload = core.analyse([_tone(tmp_path / "a.wav", seconds=10.0)])[0]
    calls = []

    def progress(done, total):
        calls.append((done, total))
        core.cancel.set()  # the Cancel button, pressed while the first windows run

    with pytest.raises(Cancelled):
        core.restore(upload, cutoff_on=True, cutoff_hz=8000, gaps="", quality="default", model="bundled",
                     progress=progress)
    assert len(calls) == 1 and 0 < calls[0][0] < calls[0][1]
    assert not [p for p in core.work.rglob("*") if p.is_file()]
    assert isinstance(core.cancel, type(threading.Event()))


# ----------------------------------------------------------------------------------------- pictures

def test_spectrogram_scale_is_shared():
    quiet, loud = np.full((4, 4), -80.0), np.full((4, 4), -80.0)
    loud[1, 2] = 12.5
    assert spectrogram_scale(quiet, loud) == spectrogram_scale(loud, quiet) == (12.5 - 100.0, 12.5)


def test_spectrogram_pictures_use_one_scale_for_both(tmp_path):
    from a2sb.plot import spectrogram_db

    loud = _tone(tmp_path / "loud.wav", level=0.9)
    quiet = _tone(tmp_path / "quiet.wav", level=0.009)  # 40 dB down
    before, after, (vmin, vmax) = spectrogram_pictures(quiet, loud, tmp_path)
    top_loud, top_quiet = spectrogram_db(loud)[2].max(), spectrogram_db(quiet)[2].max()
    assert top_loud - top_quiet == pytest.approx(40.0, abs=0.5)
    assert (vmin, vmax) == pytest.approx((top_loud - 100.0, top_loud))  # the louder one sets it for both
    for png in (before, after):
        assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the quiet picture is drawn darker: its brightest pixels stay below the loud one's
    import matplotlib.image as mpimg

    def brightest(png):
        image = mpimg.imread(str(png))[..., :3]
        h, w, _ = image.shape
        return image[h // 10: h * 8 // 10, w // 8: w * 7 // 10].sum(axis=-1).max()

    assert brightest(before) < brightest(after) - 0.3


# ------------------------------------------------------------------------------------------- tracks

def test_difference_is_restored_minus_input_at_the_output_rate(tmp_path):
    rate_in = 22050
    t = np.arange(rate_in) / rate_in
    original = 0.25 * np.sin(2 * np.pi * 300 * t)
    sf.write(str(tmp_path / "in.wav"), np.stack([original, -original], 1), rate_in, subtype="FLOAT")
    t44 = np.arange(2 * rate_in) / RATE
    extra = 0.1 * np.sin(2 * np.pi * 15000 * t44)
    restored = np.stack([0.25 * np.sin(2 * np.pi * 300 * t44) + extra, -0.25 * np.sin(2 * np.pi * 300 * t44)], 1)
    sf.write(str(tmp_path / "out.wav"), restored, RATE, subtype="FLOAT")
    dest = write_difference(tmp_path / "in.wav", tmp_path / "out.wav", tmp_path / "diff.flac")
    diff, rate = sf.read(str(dest))
    assert rate == RATE and diff.shape == restored.shape
    middle = slice(1000, -1000)  # away from the resampler's edges
    assert np.max(np.abs(diff[middle, 0] - extra[middle])) < 2e-3
    assert np.max(np.abs(diff[middle, 1])) < 2e-3
    # an output lowered by the restorer (so that it does not clip): the input is lowered alike first
    lowered = tmp_path / "lowered.wav"
    sf.write(str(lowered), 0.8 * restored, RATE, subtype="FLOAT")
    diff, _ = sf.read(str(write_difference(tmp_path / "in.wav", lowered, tmp_path / "d2.flac", gain=0.8)))
    assert np.max(np.abs(diff[middle, 0] - 0.8 * extra[middle])) < 2e-3
    assert np.max(np.abs(diff[middle, 1])) < 2e-3


# ---------------------------------------------------------------------------------------------- CLI

def test_app_without_gradio_says_how_to_install(monkeypatch, capsys):
    from a2sb.cli import main

    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio -> ImportError
    assert main(["app"]) == 2
    err = capsys.readouterr().err
    assert err == 'a2sb: error: the web app needs Gradio: pip install "a2sb[app]"\n'


@pytest.mark.parametrize("args, message", [(["--model", "/no/such/folder"], "no such model folder"),
                                           (["--max-size-mb", "0"], "must be positive"),
                                           (["--port", "70000"], "0-65535")])
def test_app_option_errors(args, message, capsys):
    pytest.importorskip("gradio")
    from a2sb.cli import main

    assert main(["app", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


# --------------------------------------------------------------------------------------------- jobs

def test_models_menu_and_one_load_per_model(tmp_path):
    folder = str(ROOT / "src" / "a2sb" / "models" / "default")  # a model folder given with --model
    core = AppCore(tmp_path, {"bundled": "default", folder: folder}, device="cpu")
    fast = core.restorer(folder, "fast", 0)
    assert fast.source == folder and fast.quality == "fast"
    loaded = fast.model
    best = core.restorer(folder, "best", 3)
    assert best.model is loaded and best.seed == 3  # the folder's model loaded once
    assert core.restorer(folder, "fast", 0) is fast
    assert core.restorer("bundled", "fast", 0).model is not loaded
    with pytest.raises(A2SBError, match="unknown model 'x'"):
        core.restorer("x", "fast", 0)
    with pytest.raises(A2SBError, match="quality must be one of fast, default, best"):
        core.restorer("bundled", "slow", 0)


def test_one_job_at_a_time(core, tmp_path):
    """Two pages pressing Restore together: the second job starts when the first has finished."""
    uploads = core.analyse([_tone(tmp_path / "a.wav", seconds=2.0), _tone(tmp_path / "b.wav", seconds=2.0)])
    times: dict[str, list[float]] = {"a": [], "b": []}
    results, errors = {}, []

    def job(name, upload):
        import time

        try:
            results[name] = core.restore(upload, cutoff_on=True, cutoff_hz=8000, gaps="", quality="fast",
                                         model="bundled", progress=lambda d, t: times[name].append(time.monotonic()))
        except Exception as err:  # reported below
            errors.append(err)

    threads = [threading.Thread(target=job, args=(n, u)) for n, u in zip("ab", uploads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert times["a"] and times["b"]
    first, second = sorted(times.values(), key=min)
    assert max(first) < min(second)  # no progress of one job between two of the other's
    assert {r.output.name for r in results.values()} == {"a.restored.wav", "b.restored.wav"}
    assert results["a"].output.parent != results["b"].output.parent
