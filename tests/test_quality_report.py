"""benchmarks/quality_report.py --merge: a candidate model's a2sb-only runs replace the a2sb rows."""

import importlib.util
import json
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def quality_report():
    spec = importlib.util.spec_from_file_location("quality_report", BENCHMARKS / "quality_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _result(rows, directory="data/heldout_clips"):
    settings = {"task": "bwe", "cutoff": 4000.0, "gap": 0.3, "every": 5.0, "max_seconds": 8.0, "model": None,
                "directory": directory}
    files = [{"file": f, "group": g, "method": m, "lsd": v, "lsd_high": v + 0.5, "lsd_16k": v - 0.5,
              "compute_s": 1.0, "seconds": 8.0}
             for f, g, m, v in rows]
    return {"settings": settings, "summary": {}, "files": files}


def _write(folder: Path, name: str, data: dict) -> None:
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(data))


def test_merge_replaces_the_methods_rows_and_recomputes(quality_report, tmp_path):
    clips = [("a.flac", "p1"), ("b.flac", "p1"), ("c.flac", "p2")]
    old = _result([(f, g, "sbr", 3.0 + i) for i, (f, g) in enumerate(clips)]
                  + [(f, g, "a2sb", 2.0) for f, g in clips])
    new = _result([(f, g, "a2sb", 1.0 + i) for i, (f, g) in enumerate(clips)])
    _write(tmp_path / "results", "heldout_bwe_4k", old)
    _write(tmp_path / "cand", "heldout_bwe_4k", new)
    _write(tmp_path / "cand", "not_in_results", new)  # nothing to merge it into: skipped
    lines = quality_report.merge_results(tmp_path / "results", tmp_path / "cand")
    assert len(lines) == 1 and "heldout_bwe_4k" in lines[0]
    merged = json.loads((tmp_path / "results" / "heldout_bwe_4k.json").read_text())
    a2sb = [r for r in merged["files"] if r["method"] == "a2sb"]
    assert [r["lsd"] for r in a2sb] == [1.0, 2.0, 3.0]
    assert sum(r["method"] == "sbr" for r in merged["files"]) == 3
    assert merged["summary"]["a2sb"]["lsd"]["mean"] == pytest.approx(2.0)
    assert merged["summary"]["sbr"]["lsd"]["mean"] == pytest.approx(4.0)
    assert merged["groups"]["p1"]["a2sb"]["lsd"]["mean"] == pytest.approx(1.5)
    # paired a2sb - sbr per clip is -2 everywhere
    assert merged["paired"]["all"]["lsd"]["mean"] == pytest.approx(-2.0)


def test_merge_refuses_another_bench(quality_report, tmp_path):
    old = _result([("a.flac", "p1", "a2sb", 2.0), ("b.flac", "p1", "a2sb", 2.0)])
    _write(tmp_path / "results", "test_bwe_4k", old)
    _write(tmp_path / "cand", "test_bwe_4k", _result([("a.flac", "p1", "a2sb", 1.0)]))
    with pytest.raises(SystemExit, match="other clips"):
        quality_report.merge_results(tmp_path / "results", tmp_path / "cand")
    _write(tmp_path / "cand", "test_bwe_4k", _result([("a.flac", "p1", "a2sb", 1.0)], directory="data/test_clips"))
    with pytest.raises(SystemExit, match="directory differs"):
        quality_report.merge_results(tmp_path / "results", tmp_path / "cand")
    other_filter = _result([("a.flac", "p1", "a2sb", 1.0), ("b.flac", "p1", "a2sb", 1.0)])
    other_filter["settings"].update(filter="cheby1", order=4)
    _write(tmp_path / "cand", "test_bwe_4k", other_filter)
    with pytest.raises(SystemExit, match="filter differs"):
        quality_report.merge_results(tmp_path / "results", tmp_path / "cand")
    assert json.loads((tmp_path / "results" / "test_bwe_4k.json").read_text()) == old  # untouched
    # a refusal writes nothing: heldout_bwe_4k would merge, but test_bwe_4k (after it) is refused
    _write(tmp_path / "results", "heldout_bwe_4k", old)
    _write(tmp_path / "cand", "heldout_bwe_4k", _result([("a.flac", "p1", "a2sb", 1.0), ("b.flac", "p1", "a2sb", 1.0)]))
    with pytest.raises(SystemExit, match="filter differs"):
        quality_report.merge_results(tmp_path / "results", tmp_path / "cand")
    assert json.loads((tmp_path / "results" / "heldout_bwe_4k.json").read_text()) == old


def test_codec_and_fullband_results_are_listed_and_rendered(quality_report, tmp_path):
    assert {"codec_mp3_64", "codec_mp3_128"} <= set(quality_report.tasks_of("heldout"))
    assert set(quality_report.tasks_of("fullband")) == {"bwe_4k", "bwe_8k", "codec_mp3_64", "codec_mp3_128"}
    command = quality_report.bench_command("fullband", "codec_mp3_64", tmp_path, None, None)
    assert command[3:11] == ["data/fullband_clips", "--task", "codec", "--codec", "mp3", "--bitrate", "64",
                             "--max-seconds"]
    settings = {"task": "codec", "codec": "mp3", "bitrate_kbps": 64.0, "max_seconds": 8.0, "model": None,
                "directory": "data/fullband_clips"}
    files = [{"file": f"sf/{f}", "group": "sf", "method": m, "lsd": v, "lsd_high": v, "lsd_oct1": v,
              "lsd_oct2": v + 1, "lsd_16k": v, "lsd_below": 0.5, "hole_share": 0.2, "hole_lsd": v,
              "bias_ne_db": -1.0, "bias_ne_db_oct1": -1.0, "onset_corr": 0.5, "actual_kbps": 64.6,
              "cutoff_hz": 11083.0, "compute_s": 1.0, "seconds": 8.0}
             for f in ("a.flac", "b.flac") for m, v in (("decode", 3.0), ("a2sb", 1.0))]
    data = {"settings": settings, "summary": {}, "files": files}
    assert quality_report.columns(data) == ["lsd", "lsd_high", "lsd_oct1", "lsd_oct2", "lsd_16k", "lsd_below",
                                            "hole_share", "hole_lsd", "bias_ne_db", "bias_ne_db_oct1", "onset_corr"]
    text = "\n".join(quality_report.task_section(data, "r.json", per_group=True))
    assert "MP3 at 64 kbit/s (actual 64.6–64.6), detected cutoffs 11.1–11.1 kHz: 2 clips" in text
    assert "--codec mp3 --bitrate 64" in text and "LSD octave 2" in text and "**all soundfonts**" in text
    assert "| all soundfonts | decode | -2.00" in text  # paired a2sb minus decode on lsd
