"""`a2sb restore` and `a2sb info` end to end, and every kind of bad input: one line, exit 2, no output."""

import json

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import butter, sosfiltfilt

from a2sb.cli import main

SR = 44100
QUICK = ["--device", "cpu"]  # with model_dir, whose config.json asks for 2 steps and 32-frame windows
NOTHING = ["--cutoff", "off", "--gaps", "off", "--holes", "off"]  # validation and I/O only, no network


def tone(seconds=0.5, channels=2, rate=SR):
    t = np.arange(int(seconds * rate)) / rate
    x = np.stack([0.3 * np.sin(2 * np.pi * (330 + 110 * c) * t) for c in range(channels)])
    x += 0.02 * np.random.default_rng(0).standard_normal(x.shape)
    return sosfiltfilt(butter(8, min(6000, rate / 2 - 500), fs=rate, output="sos"), x).astype(np.float32)


def write(path, x, rate=SR, subtype="FLOAT"):
    sf.write(path, np.asarray(x).T, rate, subtype=subtype)
    return path


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_restore_wav_with_model_folder_and_plot(tmp_path, model_dir, capsys):
    src = write(tmp_path / "song.wav", tone(0.5, channels=2))
    code, out, err = run(capsys, "restore", src, "--model", model_dir, "--cutoff", "6000", "--gaps", "off",
                         "--plot", *QUICK)
    assert code == 0, err
    dst = tmp_path / "song.restored.wav"
    y, rate = sf.read(dst, always_2d=True)
    assert rate == SR and y.shape == (int(0.5 * SR), 2)
    assert (tmp_path / "song.restored.png").stat().st_size > 1000
    assert str(dst) in out


def test_plot_never_replaces_an_existing_file(tmp_path, model_dir, capsys):
    """--plot writes song.restored.png: an existing file of that name (cover art, say) is refused before any
    work like an existing output, and replaced only with --overwrite."""
    src = write(tmp_path / "song.wav", tone(0.5, channels=2))
    cover = tmp_path / "song.restored.png"
    cover.write_bytes(b"not a spectrogram")
    code, _, err = run(capsys, "restore", src, "--model", model_dir, "--cutoff", "6000", "--gaps", "off",
                       "--plot", *QUICK)
    assert code == 2 and "song.restored.png exists (use --overwrite" in err and len(err.strip().splitlines()) == 1
    assert cover.read_bytes() == b"not a spectrogram" and not (tmp_path / "song.restored.wav").exists()
    code, _, err = run(capsys, "restore", src, "--model", model_dir, "--cutoff", "6000", "--gaps", "off",
                       "--plot", "--overwrite", *QUICK)
    assert code == 0, err
    assert cover.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["song.restored.png", "song.restored.wav", "song.wav"]


def test_restore_inpainting_flac_mono_to_out_dir(tmp_path, model_dir, capsys):
    x = tone(0.6, channels=1)
    x[:, int(0.3 * SR):int(0.35 * SR)] = 0
    src = write(tmp_path / "take.flac", x, subtype="PCM_24")
    code, _, err = run(capsys, "restore", src, "--model", model_dir / "model.safetensors", "--gaps", "0.3-0.35",
                       "--cutoff", "off", "--out-dir", tmp_path / "out", *QUICK)
    assert code == 0, err
    y, rate = sf.read(tmp_path / "out" / "take.restored.flac", always_2d=True, dtype="float32")
    x24, _ = sf.read(src, always_2d=True, dtype="float32")
    assert y.shape == (x.shape[1], 1)
    assert np.array_equal(y[:int(0.28 * SR)], x24[:int(0.28 * SR)])  # copied through bit for bit
    assert np.abs(y[int(0.3 * SR):int(0.35 * SR)]).max() > 0


def test_folder_input_output_option_and_format(tmp_path, capsys):
    folder = tmp_path / "album"
    folder.mkdir()
    write(folder / "a.wav", tone(0.2, rate=48000), rate=48000)
    write(folder / "b.flac", tone(0.2, channels=1), subtype="PCM_16")
    (folder / "notes.txt").write_text("not audio")
    code, out, err = run(capsys, "restore", folder, *NOTHING)
    assert code == 0, err
    assert sf.info(folder / "a.restored.wav").samplerate == 48000
    assert sf.info(folder / "b.restored.flac").channels == 1
    assert "2 restored" in out and "nothing to restore" in out
    code, _, err = run(capsys, "restore", folder / "a.wav", *NOTHING, "--format", "flac")
    assert code == 0 and sf.info(folder / "a.restored.flac").samplerate == 48000
    code, _, err = run(capsys, "restore", folder / "b.flac", *NOTHING, "-o", tmp_path / "x.wav")
    assert code == 0 and sf.info(tmp_path / "x.wav").frames == int(0.2 * SR)
    code, _, err = run(capsys, "restore", folder / "b.flac", *NOTHING, "-o", tmp_path / "y.wav", "--format", "flac")
    assert code == 2 and "does not match" in err


def test_downmix_of_more_than_two_channels(tmp_path, capsys):
    src = write(tmp_path / "surround.wav", np.zeros((6, 4410), np.float32) + 0.1)
    code, _, err = run(capsys, "restore", src, *NOTHING)
    assert code == 0 and "6 channels mixed down to mono" in err
    assert sf.info(tmp_path / "surround.restored.wav").channels == 1


def test_clipping_is_a_warning(tmp_path, capsys):
    x = tone(0.2)
    x[:, 100:200] = 1.0
    src = write(tmp_path / "loud.wav", x)
    code, _, err = run(capsys, "restore", src, *NOTHING)
    assert code == 0 and "a2sb: warning:" in err and "clipped" in err


def test_info_text_and_json(tmp_path, capsys):
    pytest.importorskip("a2sb.detect")
    x = tone(3.0, channels=2)
    x[:, int(1.0 * SR):int(1.3 * SR)] = 0
    src = write(tmp_path / "info.wav", x)
    code, out, err = run(capsys, "info", src, "--json")
    assert code == 0, err
    data = json.loads(out)
    assert set(data) == {"duration", "sample_rate", "channels", "cutoff_hz", "gaps", "codec", "holes", "hole_share"}
    assert data["codec"] is None and data["holes"] is False
    assert data["sample_rate"] == SR and data["channels"] == 2 and abs(data["duration"] - 3.0) < 1e-3
    assert data["cutoff_hz"] is None or 3000 < data["cutoff_hz"] < 9000
    assert len(data["gaps"]) == 1 and abs(data["gaps"][0][0] - 1.0) < 0.02 and abs(data["gaps"][0][1] - 1.3) < 0.02
    code, out, _ = run(capsys, "info", src)
    assert code == 0 and "0:03.0, 44.1 kHz stereo" in out and "1 dropout at 0:01.00-0:01.30" in out


def bad_files(tmp_path):
    files = {}
    files["garbage"] = tmp_path / "garbage.wav"
    files["garbage"].write_bytes(b"RIFF....WAVEfmt nonsense" * 3)
    good = write(tmp_path / "good.flac", tone(1.0), subtype="PCM_16")
    data = good.read_bytes()
    files["truncated"] = tmp_path / "truncated.flac"
    files["truncated"].write_bytes(data[: len(data) // 2])
    files["unsupported"] = tmp_path / "song.xyz"
    files["unsupported"].write_bytes(b"\x00\x01" * 500)
    files["empty"] = write(tmp_path / "empty.wav", np.zeros((2, 0), np.float32))
    files["nan"] = write(tmp_path / "nan.wav", np.full((1, 1000), np.nan, np.float32))
    files["inf"] = write(tmp_path / "inf.wav", np.full((1, 1000), np.inf, np.float32))
    return files


@pytest.mark.parametrize("kind,message", [
    ("garbage", "cannot read"), ("truncated", "decode"), ("unsupported", "cannot read"),
    ("empty", "empty"), ("nan", "no finite samples"), ("inf", "no finite samples"),
])
def test_bad_files(tmp_path, capsys, kind, message):
    src = bad_files(tmp_path)[kind]
    before = set(tmp_path.iterdir())
    code, _, err = run(capsys, "restore", src, "--cutoff", "4000", "--gaps", "off", "--model", "preset:tiny")
    assert code == 2
    assert err.startswith("a2sb: error:") and err.count("\n") == 1 and message in err
    assert set(tmp_path.iterdir()) == before  # no output, no temporary


@pytest.mark.parametrize("args,message", [
    (["--cutoff", "30000"], "Nyquist"),
    (["--cutoff", "-5"], "positive"),
    (["--gaps", "0.2-5.0"], "outside"),
    (["--gaps", "0.1-0.3,0.2-0.4"], "overlap"),
    (["--gaps", "abc"], "START-END"),
    (["-o", "{dir}/out.mp3"], "unsupported output format"),
    (["-o", "{dir}/in.wav"], "is the input"),
    (["-o", "{dir}/exists.wav"], "exists"),
    (["--model", "{dir}/no-such-model"], "no model"),
    (["--out-dir", "{dir}/in.wav/sub"], "cannot create output folder"),
    (["-o", "{dir}/missing/out.wav"], "output folder does not exist"),
])
def test_bad_options(tmp_path, capsys, args, message):
    write(tmp_path / "in.wav", tone(1.0))
    write(tmp_path / "exists.wav", tone(0.1))
    before = {p: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    args = [a.replace("{dir}", str(tmp_path)) for a in args]
    defaults = [] if any(a in args for a in ("--cutoff", "--gaps")) else ["--cutoff", "4000", "--gaps", "off"]
    code, _, err = run(capsys, "restore", tmp_path / "in.wav", *defaults, *args, *QUICK)
    assert code == 2
    assert err.startswith("a2sb: error:") and err.count("\n") == 1 and message in err
    assert {p: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before


def test_cutoff_above_a_low_rate_input_nyquist(tmp_path, capsys):
    src = write(tmp_path / "low.wav", tone(0.5, rate=16000), rate=16000)
    code, _, err = run(capsys, "restore", src, "--cutoff", "10000", "--gaps", "off")
    assert code == 2 and "8000 Hz" in err


def test_existing_output_is_replaced_with_overwrite(tmp_path, capsys):
    src = write(tmp_path / "in.wav", tone(0.2))
    write(tmp_path / "in.restored.wav", tone(0.1))
    assert run(capsys, "restore", src, *NOTHING)[0] == 2
    assert run(capsys, "restore", src, *NOTHING, "--overwrite")[0] == 0
    assert sf.info(tmp_path / "in.restored.wav").frames == int(0.2 * SR)


def test_usage_errors_exit_2(tmp_path, capsys):
    src = write(tmp_path / "in.wav", tone(0.2))
    for argv in (["restore", str(src), "--quality", "ultra"], ["restore", str(src), "--shard", "4/4"],
                 ["restore"], ["restore", str(src), "-o", "a.wav", "--out-dir", "d"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
    code, _, err = run(capsys, "restore", src, src, "-o", tmp_path / "one.wav", *NOTHING)
    assert code == 2 and "one input" in err
    code, _, err = run(capsys, "restore", tmp_path / "missing.wav", *NOTHING)
    assert code == 2 and "no such file" in err
