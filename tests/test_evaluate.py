import json

import numpy as np
import pytest
import soundfile as sf

from a2sb import evaluate
from a2sb.cli import main

SR = 44100


def tone(seconds, f0=220.0, seed=0):
    t = np.arange(int(seconds * SR)) / SR
    x = sum(np.sin(2 * np.pi * f0 * k * t + k) / k for k in range(1, 60))
    return (0.05 * x + 0.002 * np.random.default_rng(seed).standard_normal(len(t))).astype(np.float32)


def write(path, audio):
    sf.write(path, np.asarray(audio).T, SR, subtype="FLOAT" if str(path).endswith(".wav") else "PCM_24")
    return str(path)


def test_evaluate_two_files_prints_table_and_json(tmp_path, capsys):
    ref = tone(1.0)
    reference = write(tmp_path / "ref.wav", ref)
    restored = write(tmp_path / "est.wav", 0.5 * ref[:-50])  # 50 samples shorter: allowed
    out = tmp_path / "scores.json"
    assert main(["evaluate", reference, restored, "--cutoff", "4000", "--gaps", "0.2-0.4", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].startswith("| file") and "lsd_high" in table and "gap_snr" in table
    rows = json.loads(out.read_text())
    assert len(rows) == 1
    row = rows[0]
    assert row["reference"] == reference and row["restored"] == restored
    assert row["lsd"] == pytest.approx(2 * np.log10(2), rel=1e-3)  # a gain of 0.5
    assert row["sispec"] > 60
    assert row["gap_snr"] == pytest.approx(20 * np.log10(2), abs=1e-3)  # error = half the signal
    assert {"log_sispec", "lsd_high", "gap_lsd"} <= row.keys()
    assert row["lsd_oct1"] == pytest.approx(2 * np.log10(2), rel=1e-3)  # the gain in every octave too
    assert row["bias_ne_db"] == pytest.approx(-20 * np.log10(2), abs=0.01)
    assert row["onset_corr"] == pytest.approx(1.0, abs=1e-3)  # a gain leaves the onsets where they were


def test_evaluate_folders_matched_by_name(tmp_path, capsys):
    (tmp_path / "ref").mkdir()
    (tmp_path / "out").mkdir()
    for i in range(2):
        x = tone(0.5, 200 + 40 * i, seed=i)
        write(tmp_path / "ref" / f"song{i}.wav", x)
        write(tmp_path / "out" / f"song{i}.wav", x if i == 0 else 0.1 * x)
    out = tmp_path / "s.json"
    assert main(["evaluate", str(tmp_path / "ref"), str(tmp_path / "out"), "--json", str(out)]) == 0
    rows = {row["reference"].rsplit("/", 1)[1]: row for row in json.loads(out.read_text())}
    assert rows["song0.wav"]["lsd"] < 1e-5 and rows["song1.wav"]["lsd"] == pytest.approx(2.0, rel=1e-3)
    assert "**mean**" in capsys.readouterr().out


def test_evaluate_errors_are_one_line_exit_2(tmp_path, capsys):
    reference = write(tmp_path / "ref.wav", tone(0.5))
    too_short = write(tmp_path / "short.wav", tone(0.5)[:-100])
    assert main(["evaluate", reference, too_short]) == 2
    err = capsys.readouterr().err
    assert "differ by 100" in err and len(err.strip().splitlines()) == 1
    assert main(["evaluate", reference, str(tmp_path / "missing.wav")]) == 2
    assert "no such file" in capsys.readouterr().err
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    write(tmp_path / "a" / "x.wav", tone(0.2))
    assert main(["evaluate", str(tmp_path / "a"), str(tmp_path / "b")]) == 2
    assert "x.wav" in capsys.readouterr().err


def test_bench_quality_bwe_with_baselines(tmp_path, capsys):
    clean = tmp_path / "clean"
    clean.mkdir()
    for i in range(3):
        write(clean / f"c{i}.wav", np.stack([tone(1.0, 180 + 30 * i, seed=i)] * 2))
    out, plot = tmp_path / "bench.json", tmp_path / "bench.png"
    args = ["bench", "quality", str(clean), "--task", "bwe", "--cutoff", "4000", "--methods", "lowpassed,sbr"]
    assert main([*args, "--json", str(out), "--plot", str(plot)]) == 0
    table = capsys.readouterr().out
    assert "| lowpassed" in table and "| sbr" in table and "±" in table and "compute s / audio s" in table
    for column in ("lsd_oct1", "lsd_oct3", "bias_ne_db", "bias_ne_db_oct2", "onset_corr", "coherence_diff"):
        assert f"| {column} " in table, column
    result = json.loads(out.read_text())
    assert len(result["files"]) == 6
    summary = result["summary"]
    # SBR must beat the lowpassed input on the invented band.
    assert summary["sbr"]["lsd_high"]["mean"] < 0.5 * summary["lowpassed"]["lsd_high"]["mean"]
    stats = summary["sbr"]["lsd"]
    assert stats["low"] <= stats["mean"] <= stats["high"] and stats["n"] == 3
    per_file = [r["lsd"] for r in result["files"] if r["method"] == "sbr"]
    assert stats["mean"] == pytest.approx(np.mean(per_file), rel=1e-9)
    assert plot.stat().st_size > 1000


def test_bench_quality_inpaint_with_baselines(tmp_path, capsys):
    clean = tmp_path / "clean"
    clean.mkdir()
    for i in range(2):
        write(clean / f"c{i}.flac", tone(2.2, 200 + 50 * i, seed=i))
    out = tmp_path / "b.json"
    args = ["bench", "quality", str(clean), "--task", "inpaint", "--gap", "0.05", "--every", "1"]
    assert main([*args, "--methods", "silence,lpc", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    summary = result["summary"]
    assert summary["silence"]["gap_snr"]["mean"] == pytest.approx(0.0, abs=1e-6)
    assert summary["lpc"]["gap_snr"]["mean"] > 10
    assert {r["file"] for r in result["files"]} == {"c0.flac", "c1.flac"}
    # --max-seconds keeps the middle of each file: 1.2 s holds one 1 s period, so one gap per file
    assert main([*args, "--methods", "silence", "--max-seconds", "1.2", "--json", str(out)]) == 0
    files = json.loads(out.read_text())["files"]
    assert [r["seconds"] for r in files] == pytest.approx([1.2, 1.2])
    assert main([*args, "--methods", "nope"]) == 2
    assert "unknown method" in capsys.readouterr().err


def test_bench_quality_per_package_groups(tmp_path, capsys):
    clean = tmp_path / "clean"
    for package, count in (("pkg-a", 2), ("pkg-b", 3)):
        (clean / package).mkdir(parents=True)
        for i in range(count):
            write(clean / package / f"t{i}.flac", np.stack([tone(0.6, 150 + 40 * i, seed=i), tone(0.6, 170, seed=9)]))
    write(clean / "loose.wav", tone(0.6, 300))  # directly in DIR: group ""
    (clean / "notes.txt").write_text("not audio")
    out = tmp_path / "groups.json"
    args = ["bench", "quality", str(clean), "--task", "bwe", "--cutoff", "4000", "--methods", "lowpassed,sbr"]
    assert main([*args, "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "group pkg-a: 2 file(s)" in printed and "group (top folder): 1 file(s)" in printed
    assert "all files: 6 file(s)" in printed and "bias_db_oct3" in printed and "coherence_diff" in printed
    result = json.loads(out.read_text())
    files = result["files"]
    assert {(r["file"], r["group"]) for r in files if r["method"] == "sbr"} == {
        ("pkg-a/t0.flac", "pkg-a"), ("pkg-a/t1.flac", "pkg-a"), ("pkg-b/t0.flac", "pkg-b"),
        ("pkg-b/t1.flac", "pkg-b"), ("pkg-b/t2.flac", "pkg-b"), ("loose.wav", "")}
    assert list(result["groups"]) == ["", "pkg-a", "pkg-b"]
    for group, summary in result["groups"].items():
        rows = [r["lsd"] for r in files if r["group"] == group and r["method"] == "sbr"]
        assert summary["sbr"]["lsd"]["n"] == len(rows) and summary["sbr"]["lsd"]["mean"] == pytest.approx(np.mean(rows))
    assert result["summary"]["sbr"]["lsd"]["n"] == 6
    # The mono file has no coherence: the stereo files' mean is over them alone.
    stereo = [r["coherence"] for r in files if r["method"] == "sbr" and r["group"]]
    assert result["summary"]["sbr"]["coherence"]["mean"] == pytest.approx(np.mean(stereo))
    assert "paired" not in result  # no a2sb run


def test_paired_difference_against_the_best_baseline():
    records = [{"file": f, "group": "g", "method": m, "lsd": v, "lsd_high": v, "lsd_16k": v}
               for f, values in (("x", (3.0, 2.0, 1.5)), ("y", (4.0, 2.5, 2.6)), ("z", (5.0, 3.0, 2.7)))
               for m, v in zip(("lowpassed", "sbr", "a2sb"), values)]
    paired = evaluate.paired_against_best_baseline(records, "bwe")
    assert paired["baseline"] == "sbr"
    diff = paired["lsd"]
    assert diff["mean"] == pytest.approx(np.mean([-0.5, 0.1, -0.3])) and diff["n"] == 3 and diff["lower"] == 2
    mean, low, high = evaluate.mean_interval([-0.5, 0.1, -0.3])
    assert (diff["low"], diff["high"]) == pytest.approx((low, high))
    assert evaluate.paired_against_best_baseline([r for r in records if r["method"] != "a2sb"], "bwe") is None


def test_mean_interval_is_a_student_t_interval():
    mean, low, high = evaluate.mean_interval([1.0, 2.0, 3.0, 4.0])
    # t(0.975, 3) = 3.182, s = 1.291, n = 4
    assert mean == 2.5 and (high - low) / 2 == pytest.approx(3.1824 * 1.2910 / 2, rel=1e-3)
    assert np.isnan(evaluate.mean_interval([1.0])[1])
