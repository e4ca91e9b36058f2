"""Training data: manifests, deterministic items, degradations, build_batch and the resumable loader."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import soundfile as sf
import torch

from a2sb.audio import read_audio, resample
from a2sb.cli import main as cli_main
from a2sb.errors import A2SBError
from a2sb.prior import Prior
from a2sb.representation import N_ROWS, row_of_frequency, to_representation
from a2sb.training import datasets, manifests, pictures
from a2sb.training.config import DataConfig, load_data_config

SR = 44100
SHORT = 512 * 127  # 65 024 samples -> 128 frames: a cheap segment for statistics


def noise(seconds: float, rate: int = SR, channels: int = 1, seed: int = 0, level: float = 0.1) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal((channels, int(seconds * rate))) * level).astype(
        np.float32
    )


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Exact equality, in NumPy: torch's threaded kernels crawl on a busy 2-core machine."""
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a.numpy(), b.numpy())


def write(path, audio: np.ndarray, rate: int = SR, subtype: str = "FLOAT"):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.atleast_2d(audio).T, rate, subtype=subtype)
    return path


def manifest(path, rows, header=True):
    """rows: (split, file, duration[, true_sr])"""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        if header:
            w.writerow(manifests.MANIFEST_HEADER[: len(rows[0])])
        w.writerows(rows)
    return path


def config(man, **kw) -> DataConfig:
    kw.setdefault("p_waveform_lowpass", 0.0)
    return DataConfig(manifests=[{"path": str(man), "weight": 1.0}], **kw)


@pytest.fixture
def mono(tmp_path):
    """One 4 s mono 44.1 kHz file in a 3-column manifest."""
    f = write(tmp_path / "a.wav", noise(4.0))
    return manifest(tmp_path / "m.csv", [("train", str(f), 4.0)])


# ------------------------------------------------------------------------------------------ config


def test_config_round_trip_and_errors():
    cfg = DataConfig.from_dict({"manifests": ["x.csv", {"path": "y.csv", "weight": 2}], "p_bwe": 1.0})
    assert cfg.manifests == [{"path": "x.csv", "weight": 1.0}, {"path": "y.csv", "weight": 2.0}]
    assert DataConfig.from_dict(cfg.to_dict()) == cfg
    d = DataConfig().to_dict()
    assert d["segment_samples"] == 130560 and d["normalise"] == "published" and d["min_true_sr"] == 32000
    with pytest.raises(A2SBError, match="unknown key.*data.*"):
        DataConfig.from_dict({"p_bwee": 0.5})
    with pytest.raises(A2SBError):
        DataConfig(p_bwe=0, p_extension=0, p_inpaint=0)
    with pytest.raises(A2SBError):
        DataConfig(normalise="rms")


# ------------------------------------------------------------------------------------------ manifests


def test_manifest_write_read_and_columns(tmp_path, capsys):
    root = tmp_path / "music"
    for i in range(3):
        write(root / f"f{i}.flac", noise(0.5, seed=i), subtype="PCM_16")
    write(root / "sub" / "g.wav", noise(0.25, rate=48000), rate=48000)
    (root / "notes.txt").write_text("not audio")
    (root / "._f0.flac").write_bytes(b"\0" * 100)  # macOS resource fork: ignored silently
    (root / "broken.wav").write_bytes(b"RIFF\0\0\0\0WAVEjunk")
    out = tmp_path / "m.csv"
    summary = manifests.write_manifest([root], out, estimate_bandwidth=False)
    printed = capsys.readouterr()
    assert summary["rows"] == 4 and len(summary["skipped"]) == 1 and summary["skipped"][0].endswith("broken.wav")
    assert "skipped 1 unreadable" in printed.out and "broken.wav" in printed.err
    lines = out.read_text().splitlines()
    assert lines[0] == "split,file_path,duration,estimated_true_sr"
    rows = manifests.read_manifest(out)
    by_name = {r["path"].rsplit("/", 1)[-1]: r for r in rows}
    assert set(by_name) == {"f0.flac", "f1.flac", "f2.flac", "g.wav"}
    assert by_name["f0.flac"]["duration"] == pytest.approx(0.5)
    assert by_name["g.wav"]["true_sr"] == 48000 and by_name["f1.flac"]["true_sr"] == 44100
    assert all(r["split"] in manifests.SPLITS for r in rows)

    # 3 columns (published), relative paths resolved against the manifest's folder
    three = manifest(tmp_path / "three.csv", [("train", "music/f0.flac", 0.5), ("test", "music/f1.flac", 0.5)])
    rows3 = manifests.read_manifest(three)
    assert [r["true_sr"] for r in rows3] == [None, None]
    assert rows3[0]["path"] == str(tmp_path / "music" / "f0.flac")
    bad = tmp_path / "bad.csv"
    bad.write_text("split,file_path,duration\ntrain,x.wav\n")
    with pytest.raises(A2SBError, match="bad.csv:2"):
        manifests.read_manifest(bad)


def test_split_is_deterministic_and_by_folder_keeps_folders_together(tmp_path):
    keys = [f"album{i}/track{j}.wav" for i in range(40) for j in range(25)]
    splits = [manifests.split_of(k, (0.8, 0.1, 0.1), seed=3) for k in keys]
    assert splits == [manifests.split_of(k, (0.8, 0.1, 0.1), seed=3) for k in keys]
    assert splits != [manifests.split_of(k, (0.8, 0.1, 0.1), seed=4) for k in keys]
    share = splits.count("train") / len(splits)
    assert 0.75 < share < 0.85 and splits.count("validation") > 50 and splits.count("test") > 50

    root = tmp_path / "lib"
    for a in range(8):
        for t in range(3):
            write(root / f"album{a}" / f"t{t}.wav", noise(0.05, seed=a * 10 + t), subtype="PCM_16")
    out = tmp_path / "m.csv"
    manifests.write_manifest([root], out, split_fractions=(0.5, 0.25, 0.25), by="folder", seed=1,
                        estimate_bandwidth=False, verbose=False)
    rows = manifests.read_manifest(out)
    folders: dict[str, set] = {}
    for r in rows:
        folders.setdefault(r["path"].rsplit("/", 2)[-2], set()).add(r["split"])
    assert len(folders) == 8 and all(len(s) == 1 for s in folders.values())
    assert len(set.union(*folders.values())) > 1  # several splits are used
    again = tmp_path / "again.csv"
    manifests.write_manifest([root], again, split_fractions=(0.5, 0.25, 0.25), by="folder", seed=1,
                        estimate_bandwidth=False, verbose=False)
    assert again.read_text() == out.read_text()


def test_manifest_bandwidth_column(tmp_path):
    pytest.importorskip("a2sb.detect")
    from a2sb.degrade import lowpass

    x = noise(3.0, level=0.2)[0]
    write(tmp_path / "d" / "full.wav", x)
    write(tmp_path / "d" / "lp.wav", lowpass(x, SR, 8000.0, kind="ellip", order=8))
    manifests.write_manifest([tmp_path / "d"], tmp_path / "m.csv", verbose=False)
    rows = {r["path"].rsplit("/", 1)[-1]: r["true_sr"] for r in manifests.read_manifest(tmp_path / "m.csv")}
    assert rows["full.wav"] == SR
    assert abs(rows["lp.wav"] - 16000) < 0.05 * 16000


def test_cli_manifest(tmp_path, capsys):
    write(tmp_path / "d" / "x.wav", noise(0.1), subtype="PCM_16")
    out = tmp_path / "m.csv"
    code = cli_main(["data", "manifest", str(tmp_path / "d"), "-o", str(out), "--no-bandwidth",
                     "--split", "0,1,0", "--by", "folder", "--seed", "2"])
    assert code == 0 and manifests.read_manifest(out)[0]["split"] == "validation"
    assert cli_main(["data", "manifest", str(tmp_path / "nowhere"), "-o", str(out)]) == 2
    assert "no such folder" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ items


def test_items_are_pure_functions_of_seed_and_index(tmp_path):
    files = [write(tmp_path / f"{i}.wav", noise(3.0 + i, seed=i)) for i in range(3)]
    man = manifest(tmp_path / "m.csv", [("train", str(f), 3.0 + i) for i, f in enumerate(files)])
    cfg = config(man, p_waveform_lowpass=0.5, lowpass_kinds=["butter", "fir"])
    a, b = datasets.TrainingSet(cfg, seed=7), datasets.TrainingSet(cfg, seed=7)
    for index in (0, 5, 123456):
        x, y = a[index], b[index]
        assert x.keys() == y.keys()
        assert all(same(x[k], y[k]) for k in x)
    assert not same(a[0]["clean"], a[1]["clean"])
    assert not same(a[0]["clean"], datasets.TrainingSet(cfg, seed=8)[0]["clean"])
    assert len(a) == cfg.epoch_length


def test_crop_equals_slice_of_whole_file(tmp_path):
    x = noise(5.0, level=0.3)
    f = write(tmp_path / "a.flac", x, subtype="PCM_24")
    man = manifest(tmp_path / "m.csv", [("train", str(f), 5.0)])
    ds = datasets.TrainingSet(config(man))
    full, _ = read_audio(f)
    starts = set()
    for i in range(6):
        item = ds[i]
        s = int(item["start"])
        starts.add(s)
        assert same(item["clean"], torch.from_numpy(full[0, s:s + 130560]))
        assert same(item["degraded"], item["clean"])
    assert len(starts) == 6 and max(starts) <= full.shape[1] - 130560


def test_resampled_and_short_files(tmp_path):
    f48 = write(tmp_path / "a48.wav", noise(4.0, rate=48000), rate=48000)
    short = write(tmp_path / "short.wav", noise(1.0, seed=3))
    man48 = manifest(tmp_path / "m48.csv", [("train", str(f48), 4.0)])
    full = resample(read_audio(f48, sample_rate=None)[0], 48000, SR)[0]
    ds = datasets.TrainingSet(config(man48))
    for i in range(3):
        item = ds[i]
        s = int(item["start"])
        assert item["clean"].shape == (130560,)
        assert np.abs(item["clean"].numpy() - full[s:s + 130560]).max() < 1e-5

    item = datasets.TrainingSet(config(manifest(tmp_path / "ms.csv", [("train", str(short), 1.0)])))[0]
    assert int(item["start"]) == 0
    np.testing.assert_array_equal(item["clean"][:SR].numpy(), read_audio(short)[0][0])
    assert not item["clean"][SR:].any()


def test_stereo_channel_choice(tmp_path):
    t = np.arange(4 * SR) / SR
    left, right = 0.3 * np.sin(2 * np.pi * 440 * t), 0.2 * np.sin(2 * np.pi * 1000 * t)
    f = write(tmp_path / "st.wav", np.stack([left, right]).astype(np.float32))
    man = manifest(tmp_path / "m.csv", [("train", str(f), 4.0)])
    full = read_audio(f)[0]
    seen = set()
    ds = datasets.TrainingSet(config(man, channel="random"))
    for i in range(12):
        item = ds[i]
        s = int(item["start"])
        match = [c for c in (0, 1) if np.array_equal(item["clean"].numpy(), full[c, s:s + 130560])]
        assert len(match) == 1
        seen.add(match[0])
    assert seen == {0, 1}
    item = datasets.TrainingSet(config(man, channel="mean"))[0]
    s = int(item["start"])
    np.testing.assert_allclose(item["clean"].numpy(), full[:, s:s + 130560].mean(0), atol=1e-7)


def test_normalisation(tmp_path):
    t = np.arange(3 * SR) / SR
    loud = write(tmp_path / "loud.wav", (2.0 * np.sin(2 * np.pi * 220 * t)).astype(np.float32))
    positive = write(tmp_path / "pos.wav", (0.3 + 0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32))
    man = manifest(tmp_path / "m.csv", [("train", str(loud), 3.0)])
    clean = datasets.TrainingSet(config(man))[0]["clean"]
    assert clean.abs().max() == pytest.approx(1.0, abs=1e-6)
    man = manifest(tmp_path / "p.csv", [("train", str(positive), 3.0)])
    item = datasets.TrainingSet(config(man))[0]
    raw = read_audio(positive)[0][0, int(item["start"]):int(item["start"]) + 130560]
    np.testing.assert_allclose(item["clean"].numpy(), 2 * raw - 1, atol=1e-6)
    # loudness: -20 dBFS ± 6 dB
    ds = datasets.TrainingSet(config(man, normalise="loudness", loudness_target_db=-20.0, loudness_jitter_db=6.0))
    levels = []
    for i in range(10):
        x = ds[i]["clean"].double()
        levels.append(20 * np.log10(float(x.pow(2).mean().sqrt())))
    assert -26.01 < min(levels) and max(levels) < -13.99 and max(levels) - min(levels) > 2


def test_unreadable_files_are_skipped_deterministically(tmp_path):
    good = write(tmp_path / "good.wav", noise(3.0))
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF" + b"\x00" * 64)
    man = manifest(tmp_path / "m.csv", [("train", str(good), 3.0), ("train", str(bad), 30.0)])
    ds = datasets.TrainingSet(config(man, segment_samples=SHORT))
    items = [ds[i] for i in range(6)]  # the bad file carries 10/11 of the weight: it is drawn
    assert ds.bad_files == 1 and ds.failures == 1 and ds.skipped_reads >= 1
    assert all(ds.file_path(int(it["source"])) == str(good) for it in items)
    fresh = datasets.TrainingSet(config(man, segment_samples=SHORT))
    assert all(same(fresh[i]["clean"], items[i]["clean"]) for i in range(6))


def test_sr_loss_mask_column(tmp_path):
    f = [write(tmp_path / f"{i}.wav", noise(3.0, seed=i)) for i in range(3)]
    man = manifest(tmp_path / "m.csv", [("train", str(f[0]), 3.0, 32000), ("train", str(f[1]), 3.0, 22050),
                                        ("train", str(f[2]), 3.0, 44100)])
    ds = datasets.TrainingSet(config(man, p_bwe=0, p_inpaint=1))
    rows = {ds.file_path(int(it["source"])): int(it["true_row"]) for it in (ds[i] for i in range(20))}
    assert rows == {str(f[0]): row_of_frequency(16000), str(f[2]): N_ROWS}  # 22.05 kHz file dropped
    assert row_of_frequency(16000) == 743
    ds = datasets.TrainingSet(config(man, apply_sr_loss_mask=False))
    assert {int(ds[i]["true_row"]) for i in range(20)} == {N_ROWS}
    # BWE cutoffs stay inside a narrow file's true band
    narrow = manifest(tmp_path / "n.csv", [("train", str(f[1]), 3.0, 20000)])
    ds = datasets.TrainingSet(config(narrow, p_bwe=1, p_inpaint=0, min_true_sr=16000, segment_samples=SHORT))
    rows = [int(ds[i]["cutoff_row"]) for i in range(30)]
    assert 92 <= min(rows) and max(rows) < row_of_frequency(10000) == int(ds[0]["true_row"])


def test_degradation_statistics(tmp_path):
    f = write(tmp_path / "a.wav", noise(2.0))
    man = manifest(tmp_path / "m.csv", [("train", str(f), 2.0)])
    cfg = config(man, segment_samples=SHORT, p_bwe=0.5, p_extension=0.2, p_inpaint=0.3)
    ds = datasets.TrainingSet(cfg)
    width = cfg.frames
    assert width == 128
    lo, hi = row_of_frequency(2000), row_of_frequency(16000)
    assert (lo, hi) == (92, 743)
    kinds, rows, widths = [], [], []
    for i in range(400):
        item = ds[i]
        r, (a, b), kind = int(item["cutoff_row"]), item["gap"].tolist(), int(item["kind"])
        if kind == datasets.BWE:
            assert (a, b) == (0, 0)
            kinds.append("bwe")
            rows.append(r)
        elif kind == datasets.EXTENSION:
            assert r == N_ROWS and (a == 0 or b == width) and 32 <= (b if a == 0 else a) < width - 32
            kinds.append("ext")
        else:
            assert r == N_ROWS and 0 <= a < b <= width
            kinds.append("inp")
            widths.append(b - a)
        assert same(item["degraded"], item["clean"])
    n = len(kinds)
    assert abs(kinds.count("bwe") / n - 0.5) < 0.08
    assert abs(kinds.count("ext") / n - 0.2) < 0.07
    assert abs(kinds.count("inp") / n - 0.3) < 0.07
    assert lo <= min(rows) and max(rows) < hi and max(rows) - min(rows) > 400
    assert int(0.03378 * width) - 1 <= min(widths) and max(widths) <= int(0.5404 * width) + 1


def test_waveform_lowpass_items(tmp_path):
    f = write(tmp_path / "a.wav", noise(3.0, level=0.2))
    man = manifest(tmp_path / "m.csv", [("train", str(f), 3.0)])
    ds = datasets.TrainingSet(config(man, segment_samples=SHORT, p_bwe=1.0, p_inpaint=0.0, p_waveform_lowpass=1.0,
                                 lowpass_kinds=["brickwall", "ellip", "no-such-filter"], lowpass_orders=[8]))
    assert ds.lowpass_kinds == ["brickwall", "ellip"]
    for i in range(4):
        item = ds[i]
        r = int(item["cutoff_row"])
        assert 92 <= r < 743 and not same(item["degraded"], item["clean"])
        mag_clean = to_representation(item["clean"])[0, :, 4:-4].pow(4).mean(-1)
        mag_deg = to_representation(item["degraded"])[0, :, 4:-4].pow(4).mean(-1)
        # pass band kept, stop band gone (the transition band around row r depends on the filter)
        assert torch.allclose(mag_deg[: r - 40], mag_clean[: r - 40], rtol=0.05)
        assert mag_deg[r + 80:].max() < 1e-3 * mag_clean[r + 80:].mean()


def codec_config(man, **kw) -> DataConfig:
    kw = {"p_bwe": 0.0, "p_inpaint": 0.0, "p_codec": 1.0, "codecs": ["mp3"], "codec_kbps": [64, 64], **kw}
    return config(man, segment_samples=SHORT, **kw)


def test_codec_items(tmp_path):
    import scipy.signal as sps

    from a2sb import codecs

    if not codecs.available("mp3"):
        pytest.skip("this libsndfile has no MP3")
    f = write(tmp_path / "a.wav", noise(3.0, level=0.2))
    man = manifest(tmp_path / "m.csv", [("train", str(f), 3.0)])
    a, b = datasets.TrainingSet(codec_config(man), seed=4), datasets.TrainingSet(codec_config(man), seed=4)
    for index in (0, 9):
        x, y = a[index], b[index]
        assert all(same(x[k], y[k]) for k in x)  # encoders and the detector are deterministic
        assert int(x["kind"]) == datasets.CODEC and x["gap"].tolist() == [0, 0]
        holes = x["holes"]
        assert holes.dtype == torch.bool and holes.shape == (N_ROWS, 128)
        row = int(x["cutoff_row"])
        # LAME at 64 kbit/s cuts near 16 kHz; the holes lie below the cutoff, above 2 kHz
        assert row_of_frequency(14000) < row < row_of_frequency(17500)
        assert holes.any() and not holes[row:].any() and not holes[:row_of_frequency(1900)].any()
        assert not same(x["degraded"], x["clean"])
        # the decode is aligned with the crop: the band below 4 kHz matches
        low = sps.butter(8, 4000, fs=SR, output="sos")
        below = [sps.sosfiltfilt(low, x[k].numpy()) for k in ("clean", "degraded")]
        assert np.corrcoef(*below)[0, 1] > 0.9
    # a narrow file's true band caps the cutoff row
    capped = manifest(tmp_path / "n.csv", [("train", str(f), 3.0, 24000)])
    item = datasets.TrainingSet(codec_config(capped, min_true_sr=16000), seed=4)[0]
    assert int(item["cutoff_row"]) == int(item["true_row"]) == row_of_frequency(12000)
    # the bitrate is drawn log-uniformly from codec_kbps, the codec from codecs; other kinds carry no holes
    mixed = datasets.TrainingSet(codec_config(man, p_bwe=1.0, p_codec=1.0, codecs=["mp3", "vorbis", "opus"],
                                              codec_kbps=[48, 192]), seed=4)
    kinds = [int(mixed[i]["kind"]) for i in range(8)]
    assert set(kinds) == {datasets.BWE, datasets.CODEC}
    assert not any(mixed[i]["holes"].any() for i in range(8) if kinds[i] == datasets.BWE)


def test_bwe_items_with_a_gap(tmp_path, mono):
    """p_bwe_gap gives a share of the BWE items a gap too; everything else about every item is unchanged."""
    plain = datasets.TrainingSet(config(mono, p_bwe=0.6, p_inpaint=0.4), seed=2)
    every = datasets.TrainingSet(config(mono, p_bwe=0.6, p_inpaint=0.4, p_bwe_gap=1.0), seed=2)
    half = datasets.TrainingSet(config(mono, p_bwe=0.6, p_inpaint=0.4, p_bwe_gap=0.5), seed=2)
    with_gap = 0
    for i in range(24):
        a, b, c = plain[i], every[i], half[i]
        assert all(same(a[k], b[k]) and same(a[k], c[k]) for k in a if k != "gap")
        if int(a["kind"]) == datasets.BWE:
            assert a["gap"].tolist() == [0, 0] and int(b["cutoff_row"]) < N_ROWS
            first, stop = b["gap"].tolist()
            assert 0 <= first < stop <= plain.config.frames
            with_gap += c["gap"].tolist() != [0, 0]
        else:
            assert same(a["gap"], b["gap"]) and same(a["gap"], c["gap"])
    assert 0 < with_gap < sum(int(plain[i]["kind"]) == datasets.BWE for i in range(24))
    built = pictures.build_batch(torch.utils.data.default_collate([every[i] for i in range(24)]))
    for i in range(24):
        item = every[i]
        if int(item["kind"]) == datasets.BWE:  # the mask is the band and the gap
            first, stop = item["gap"].tolist()
            row = int(item["cutoff_row"])
            mask = built["mask"][i, 0]
            assert bool(mask[row:].all()) and bool(mask[:, first:stop].all())
            assert not bool(mask[:row, :first].any()) and not bool(mask[:row, stop:].any())
    with pytest.raises(A2SBError, match="p_bwe_gap"):
        config(mono, p_bwe_gap=1.5)


def test_codec_config_checks(tmp_path, mono):
    with pytest.raises(A2SBError, match="unknown codec"):
        config(mono, codecs=["aac"])
    with pytest.raises(A2SBError, match="codec_kbps"):
        config(mono, codec_kbps=[128, 64])
    with pytest.raises(A2SBError, match="p_codec"):
        config(mono, p_bwe=0, p_inpaint=0, p_codec=0)
    cfg = config(mono)
    assert (cfg.p_codec, cfg.codecs, cfg.codec_kbps) == (0.0, ["mp3", "vorbis", "opus"], [48.0, 192.0])
    assert not datasets.TrainingSet(cfg)[0]["holes"].any()


# ------------------------------------------------------------------------------------------ validation


def test_validation_set(tmp_path):
    files = [write(tmp_path / f"v{i}.wav", noise(7.0, seed=i)) for i in range(3)]
    man = manifest(tmp_path / "m.csv", [("validation", str(f), 7.0) for f in files] +
                   [("train", str(files[0]), 7.0)])
    cfg = config(man)
    ds = datasets.ValidationSet(cfg, max_files=2, max_items=3)
    assert len(ds) == 3  # 2 files x 2 segments, capped at 3, shared round-robin
    sources = [ds.file_path(int(ds[i]["source"])) for i in range(3)]
    assert sorted(sources) == sorted([str(files[0]), str(files[0]), str(files[1])])
    t_seg = 130560 / SR + 0.001
    for i in range(len(ds)):
        a, b = ds[i], datasets.ValidationSet(cfg, max_files=2, max_items=3)[i]
        assert all(same(a[k], b[k]) for k in a)
        assert int(a["start"]) in (0, int(t_seg * SR))
        cutoff, gap = int(a["cutoff_row"]), tuple(a["gap"].tolist())
        assert (cutoff, gap) in ((185, (0, 0)), (N_ROWS, (115, 140)))
    full = datasets.ValidationSet(cfg)
    assert len(full) == 6
    kinds = {int(full[i]["cutoff_row"]) for i in range(len(full))}
    assert kinds == {185, N_ROWS}


# ------------------------------------------------------------------------------------------ batches


def test_build_batch_masks_and_fill():
    torch.manual_seed(0)
    length = SHORT
    clean = torch.randn(3, length) * 0.1
    degraded = clean.clone()
    degraded[1] = torch.from_numpy(
        np.convolve(clean[1].numpy(), np.ones(5) / 5, mode="same").astype(np.float32)
    )
    batch = {
        "clean": clean,
        "degraded": degraded,
        "cutoff_row": torch.tensor([300, 200, N_ROWS]),
        "gap": torch.tensor([[0, 0], [0, 0], [10, 50]]),
        "true_row": torch.tensor([500, 150, N_ROWS]),
    }
    out = pictures.build_batch(batch, generator=torch.Generator().manual_seed(1))
    x0, x1, mask, loss = out["x0"], out["x1"], out["mask"], out["loss_mask"]
    assert x0.shape == x1.shape == (3, 3, N_ROWS, 128) and mask.shape == loss.shape == (3, 1, N_ROWS, 128)
    assert same(x0, to_representation(clean))
    rows = torch.arange(N_ROWS)[:, None].expand(N_ROWS, 128)
    cols = torch.arange(128)[None, :].expand(N_ROWS, 128)
    assert same(mask[0, 0], (rows >= 300).float())
    assert same(mask[1, 0], (rows >= 200).float())
    assert same(mask[2, 0], ((cols >= 10) & (cols < 50)).float())
    assert same(loss[0, 0], ((rows >= 300) & (rows < 500)).float())
    assert not loss[1].any()  # cutoff above the true band: nothing to learn
    assert same(loss[2], mask[2])
    known = mask[:, 0] == 0
    # known region: exactly the clean picture (items 0, 2) / the degraded one (item 1)
    assert same(x1[0][:, known[0]], x0[0][:, known[0]])
    assert same(x1[2][:, known[2]], x0[2][:, known[2]])
    xd1 = to_representation(degraded[1])
    assert same(x1[1][:, known[1]], xd1[:, known[1]])
    hole = x1[0][:, ~known[0]]
    assert abs(float(hole.mean())) < 0.01 and abs(float(hole.std()) - 0.5) < 0.01
    assert all(abs(float(x1[0, c][~known[0]].std()) - 0.5) < 0.02 for c in range(3))
    # the same generator seed gives the same batch; an explicit noise is used as given
    again = pictures.build_batch(batch, generator=torch.Generator().manual_seed(1))
    assert same(again["x1"], x1)
    z = torch.ones_like(x0)
    filled = pictures.build_batch(batch, noise=z, prior=Prior("noise", 0.25))["x1"]
    assert same(filled[2][:, ~known[2]], torch.full_like(filled[2][:, ~known[2]], 0.25))


def test_build_batch_puts_codec_holes_in_the_masks():
    torch.manual_seed(0)
    clean = torch.randn(2, SHORT) * 0.1
    degraded = clean.clone()
    degraded[0] = degraded[0] * 0.5
    holes = torch.zeros(2, N_ROWS, 128, dtype=torch.bool)
    holes[0, 100:120, 30:40] = True  # below the cutoff
    holes[1, 200:210, 60:70] = True  # a full-band item
    batch = {
        "clean": clean, "degraded": degraded, "holes": holes,
        "cutoff_row": torch.tensor([600, N_ROWS]), "gap": torch.zeros(2, 2, dtype=torch.int64),
        "true_row": torch.tensor([N_ROWS, 205]),
        "context": torch.zeros(2, 0), "context_valid": torch.zeros(2, 2, dtype=torch.int64),
    }
    out = pictures.build_batch(batch, generator=torch.Generator().manual_seed(1))
    mask, loss = out["mask"][:, 0].bool(), out["loss_mask"][:, 0].bool()
    rows = torch.arange(N_ROWS)[:, None]
    assert same(mask[0], (rows >= 600).expand(N_ROWS, 128) | holes[0])
    assert same(mask[1], holes[1])
    assert same(loss[0], mask[0])
    assert same(loss[1], holes[1] & (rows < 205))  # the true band still caps the loss
    # the dsp prior: hole cells get the decode plus noise, in a full-band item as below a cutoff
    z = torch.zeros(2, 3, N_ROWS, 128)
    x1 = pictures.build_batch(batch, noise=z, prior=Prior("dsp", 0.1))["x1"]
    xd = to_representation(degraded)
    assert torch.allclose(x1[0][:, holes[0]], xd[0][:, holes[0]], atol=1e-6)
    assert torch.allclose(x1[1][:, holes[1]], xd[1][:, holes[1]], atol=1e-6)


# ------------------------------------------------------------------------------------------ loader


def test_step_sampler_indices():
    s = datasets.StepSampler(4, start_step=3, world_size=2, rank=1, steps=2)
    assert list(s) == [[28, 29, 30, 31], [36, 37, 38, 39]] and len(s) == 2
    seen = set()
    for rank in range(3):
        for batch in datasets.StepSampler(5, start_step=0, world_size=3, rank=rank, steps=4):
            assert not seen & set(batch)
            seen |= set(batch)
    assert seen == set(range(60))


def test_loader_deterministic_with_workers_and_resumable(tmp_path):
    files = [write(tmp_path / f"{i}.wav", noise(2.0, seed=i)) for i in range(2)]
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF" + b"\x01" * 64)
    man = manifest(tmp_path / "m.csv", [("train", str(f), 2.0) for f in files] + [("train", str(bad), 2.0)])
    cfg = config(man, segment_samples=512 * 31, p_waveform_lowpass=0.5, lowpass_kinds=["butter"])
    run = list(datasets.make_loader(datasets.TrainingSet(cfg, seed=5), batch_size=3, start_step=0, steps=4))
    ds = datasets.TrainingSet(cfg, seed=5)
    with_workers = list(datasets.make_loader(ds, batch_size=3, start_step=0, workers=2, steps=4))
    resumed = list(datasets.make_loader(datasets.TrainingSet(cfg, seed=5), batch_size=3, start_step=2, steps=2))
    assert len(run) == len(with_workers) == 4
    for a, b in zip(run, with_workers):
        assert all(same(a[k], b[k]) for k in a)
    for a, b in zip(run[2:], resumed):
        assert all(same(a[k], b[k]) for k in a)
    assert run[0]["clean"].shape == (3, 512 * 31)
    assert ds.bad_files == 1  # counted by the worker processes, seen in the main one


def test_published_config_file_loads():
    from importlib import resources

    path = resources.files("a2sb") / "configs" / "data_published.yaml"
    cfg = load_data_config(path)
    assert (cfg.p_bwe, cfg.p_extension, cfg.p_inpaint) == (0.5, 0.0, 0.5)
    assert cfg.channel == "mean" and cfg.p_waveform_lowpass == 0 and cfg.manifests[0]["path"] == "train.csv"
