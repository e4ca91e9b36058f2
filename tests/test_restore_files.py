"""Issue 22: restoring files as a user would: the 2^18 crash, outputs that follow the input (rate,
container, bit depth, tags; lossy -> FLAC), no clipping (reported), failures as one line before the
work, folders (failing files, --shard, --recursive, --skip-existing, --dry-run) and a fast `--help`."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from a2sb.cli import main
from a2sb.model import A2SBModel, save_model
from a2sb.network import preset
from a2sb.restorer import Restorer

SR = 44100
NOTHING = ["--cutoff", "off", "--gaps", "off", "--holes", "off"]  # validation and I/O only, no network
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    model = A2SBModel(preset("tiny"), t_cutoffs=[0.5], default_steps=2, default_window=32, default_hop=16)
    folder = tmp_path_factory.mktemp("model") / "tiny"
    save_model(model, folder)
    return folder


def tone(seconds=0.3, channels=2, rate=SR, level=0.3):
    t = np.arange(int(seconds * rate)) / rate
    x = np.stack([level * np.sin(2 * np.pi * (330 + 110 * c) * t) for c in range(channels)])
    return (x + 0.01 * np.random.default_rng(0).standard_normal(x.shape)).astype(np.float32)


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_crash_command_of_issue_22(tmp_path, model_dir, capsys):
    """A gap across 2^18 samples (5.944 s) used to end in a ValueError traceback."""
    code, out, err = run(capsys, "restore", ROOT / "examples" / "example.flac", "--gaps", "5.9-6.2",
                         "--cutoff", "off", "-o", tmp_path / "x.wav", "--model", model_dir, "--device", "cpu")
    assert code == 0, err
    y, rate = sf.read(tmp_path / "x.wav", always_2d=True)
    x, _ = sf.read(ROOT / "examples" / "example.flac", always_2d=True)
    assert rate == SR and y.shape == x.shape and sf.info(tmp_path / "x.wav").subtype == "PCM_16"
    assert "1 gap at 0:05.90-0:06.20 (given): filled" in out and "regenerated 1 gap" in out


@pytest.mark.parametrize("subtype,rate,expected", [("PCM_16", 48000, "PCM_16"), ("PCM_24", 44100, "PCM_24"),
                                                   ("FLOAT", 96000, "FLOAT"), ("PCM_U8", 22050, "PCM_16"),
                                                   ("PCM_32", 32000, "PCM_32")])
def test_output_follows_the_input(tmp_path, capsys, subtype, rate, expected):
    src = tmp_path / "in.wav"
    with sf.SoundFile(src, "w", rate, 2, subtype) as f:
        f.title, f.artist, f.album = "A Title", "Some Artist", "An Album"
        f.write(tone(0.3, rate=rate).T)
    code, out, err = run(capsys, "restore", src, *NOTHING)
    assert code == 0, err
    result = tmp_path / "in.restored.wav"
    info = sf.info(result)
    assert (info.format, info.subtype, info.samplerate, info.frames) == ("WAV", expected, rate, int(0.3 * rate))
    with sf.SoundFile(result) as f:
        assert (f.title, f.artist, f.album) == ("A Title", "Some Artist", "An Album")
    x, _ = sf.read(src, dtype="float32")
    y, _ = sf.read(result, dtype="float32")
    assert np.array_equal(x, y)  # a copy of a lossless input is exact (no dither where nothing is new)


def test_16_bit_outputs_are_dithered(tmp_path):
    from a2sb.output import OutputFormat, finish

    lsb = 2.0**-15
    x = np.full((1, 200_000), 0.25 * lsb, np.float32)  # a quarter of a 16-bit step
    fmt = OutputFormat("WAV", "PCM_16", SR)
    finish([x], tmp_path / "d.wav", fmt, 1, 1.0, seed=3)
    y, _ = sf.read(tmp_path / "d.wav", dtype="float64")
    assert set(np.unique(np.round(y / lsb))) <= {-1.0, 0.0, 1.0}  # TPDF: at most one step off
    assert abs(y.mean() / lsb - 0.25) < 0.01  # undithered rounding would give 0 everywhere
    finish([x], tmp_path / "e.wav", fmt, 1, 1.0, seed=3)
    assert (tmp_path / "d.wav").read_bytes() == (tmp_path / "e.wav").read_bytes()  # seeded


@pytest.mark.parametrize("fmt,subtype,ext", [("FLAC", "PCM_24", ".flac"), ("AIFF", "PCM_16", ".aiff"),
                                             ("OGG", "VORBIS", ".ogg"), ("MP3", "MPEG_LAYER_III", ".mp3")])
def test_container_follows_the_input_and_lossy_goes_to_flac(tmp_path, capsys, fmt, subtype, ext):
    src = tmp_path / f"song{ext}"
    sf.write(src, tone(0.5).T, SR, format=fmt, subtype=subtype)
    code, out, err = run(capsys, "restore", src, *NOTHING)
    assert code == 0, err
    lossy = fmt in ("OGG", "MP3")
    result = tmp_path / f"song.restored{'.flac' if lossy else ext}"
    info = sf.info(result)
    assert info.format == ("FLAC" if lossy else fmt) and info.subtype == ("PCM_16" if lossy else subtype)
    code, _, err = run(capsys, "restore", src, *NOTHING, "--format", "wav")
    assert code == 0, err
    assert sf.info(tmp_path / "song.restored.wav").format == "WAV"


def test_every_readable_lossless_extension_can_be_written_back(tmp_path):
    """Folders pick up every AUDIO_EXTENSIONS file and the output keeps the input's ending unless it is
    lossy, so each lossless ending must name a container (.snd and .aifc did not)."""
    from a2sb.audio import AUDIO_EXTENSIONS, CONTAINERS

    lossy = {".mp3", ".ogg", ".oga", ".opus"}
    assert AUDIO_EXTENSIONS - lossy <= set(CONTAINERS)
    for ext, fmt in ((".snd", "AU"), (".aifc", "AIFF")):
        src = tmp_path / f"song{ext}"
        sf.write(src, tone(0.3).T, SR, format=fmt, subtype="PCM_16")
        report = Restorer().restore_file(src, cutoff=None, gaps=None)
        assert report.output == tmp_path / f"song.restored{ext}" and sf.info(report.output).format == fmt
        assert np.array_equal(sf.read(src)[0], sf.read(report.output)[0])


def test_restore_file_warns_about_what_its_own_analysis_found(tmp_path):
    x = tone(0.3, level=0.7)
    x[:, 1000:1010] = 1.0  # clipped
    src = tmp_path / "clipped.wav"
    sf.write(src, x.T, SR, subtype="PCM_16")
    messages = []
    Restorer(on_warning=messages.append).restore_file(src, cutoff=None, gaps=None)
    assert len(messages) == 1 and "is clipped" in messages[0]


def test_samples_beyond_full_scale_are_not_called_clipping(tmp_path):
    """A float file (or a lossy decode of a loud master) may go beyond full scale without any sample cut
    off: that is said as such, not as clipping; a hard-clipped float file is still clipping."""
    x = tone(0.3, level=1.3)  # peaks of 1.3, nothing flat
    src = tmp_path / "hot.wav"
    sf.write(src, x.T, SR, subtype="FLOAT")
    messages = []
    Restorer(on_warning=messages.append).restore_file(src, cutoff=None, gaps=None)
    assert len(messages) == 1 and "samples beyond full scale" in messages[0] and "is clipped" not in messages[0]
    flat = tmp_path / "flat.wav"
    sf.write(flat, np.clip(x, -1.0, 1.0).T, SR, subtype="FLOAT")
    messages.clear()
    Restorer(on_warning=messages.append).restore_file(flat, cutoff=None, gaps=None)
    assert len(messages) == 1 and "is clipped" in messages[0] and "beyond full scale" not in messages[0]


def test_a_failed_write_is_one_error_and_leaves_nothing(tmp_path, monkeypatch):
    """A full disk while writing: an A2SBError naming the input (the CLI's one line), no file left."""
    from a2sb import restorer
    from a2sb.errors import A2SBError

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(restorer, "finish", full)
    src = tmp_path / "in.wav"
    sf.write(src, tone(0.3).T, SR, subtype="PCM_16")
    with pytest.raises(A2SBError, match="No space left on device"):
        Restorer().restore_file(src, tmp_path / "out.wav", cutoff=None, gaps=None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav"]


def test_a_result_that_would_clip_is_lowered_and_reported(tmp_path, capsys):
    x = tone(0.3, level=0.7)
    x[:, 1000:1003] = 1.5  # over full scale (float WAV holds it)
    src = tmp_path / "hot.wav"
    sf.write(src, x.T, SR, subtype="FLOAT")
    for name in ("a.wav", "b.flac"):
        code, out, err = run(capsys, "restore", src, *NOTHING, "-o", tmp_path / name)
        assert code == 0, err
        y, _ = sf.read(tmp_path / name, dtype="float32")
        assert np.abs(y).max() < 0.99 and np.abs(y).max() > 0.98  # -0.1 dBFS, nothing clipped
        assert "peak +3.5 dBFS, lowered by 3.6 dB so that nothing clips" in out
    quiet = tmp_path / "quiet.wav"
    sf.write(quiet, tone(0.3).T, SR, subtype="FLOAT")
    code, out, _ = run(capsys, "restore", quiet, *NOTHING)
    assert code == 0 and "lowered" not in out
    assert np.array_equal(sf.read(quiet)[0], sf.read(tmp_path / "quiet.restored.wav")[0])


def test_read_only_output_folder_is_refused_before_the_work(tmp_path, capsys):
    src = tmp_path / "in.wav"
    sf.write(src, tone().T, SR)
    folders = ["/sys"]  # root cannot create files there either
    if os.geteuid() != 0:  # permission bits bind only users other than root
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        folders.append(locked)
    for folder in folders:
        for argv in (["-o", Path(folder) / "out.wav"], ["--out-dir", folder]):
            code, out, err = run(capsys, "restore", src, *argv, "--cutoff", "4000", "--model", "no-such-model")
            assert code == 2 and err.startswith("a2sb: error: cannot write to folder") and err.count("\n") == 1
            assert out == ""  # refused before the analysis, the model and the work
    code, _, err = run(capsys, "restore", src, *NOTHING, "--out-dir", src / "sub")
    assert code == 2 and "cannot create output folder" in err


def test_unreadable_input_says_why(tmp_path, capsys):
    path = tmp_path / "sock.wav"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    try:
        code, _, err = run(capsys, "restore", path, *NOTHING)
    finally:
        server.close()
    assert code == 2 and err.count("\n") == 1 and "cannot read audio file" in err
    assert "System error" not in err and "No such device" in err


def test_existing_output_from_python_names_the_python_option(tmp_path):
    src = tmp_path / "in.wav"
    sf.write(src, tone().T, SR)
    sf.write(tmp_path / "in.restored.wav", tone().T, SR)
    with pytest.raises(Exception, match=r"pass overwrite=True") as err:
        Restorer().restore_file(src, cutoff=None, gaps=None)
    assert "--overwrite" not in str(err.value)


def make_folder(root, names):
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, tone(0.1).T, SR)


def test_folder_continues_past_a_failing_file_and_summarises(tmp_path, capsys):
    make_folder(tmp_path / "in", ["a.wav", "c.wav"])
    (tmp_path / "in" / "b.wav").write_bytes(b"RIFF....WAVEfmt nonsense" * 3)
    code, out, err = run(capsys, "restore", tmp_path / "in", *NOTHING, "--out-dir", tmp_path / "out")
    assert code == 2
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.restored.wav", "c.restored.wav"]
    assert "b.wav" in err and "2 restored, 1 failed" in out and "b.wav" in out.splitlines()[-1]


def test_shard_recursive_skip_existing_and_dry_run(tmp_path, capsys):
    names = [f"t{i}.wav" for i in range(5)]
    make_folder(tmp_path / "in", names + ["sub/deep.wav", ".hidden/x.wav"])
    out_dir = tmp_path / "out"
    code, out, _ = run(capsys, "restore", tmp_path / "in", *NOTHING, "--out-dir", out_dir, "--dry-run")
    assert code == 0 and not out_dir.exists() and "t4.wav" in out
    written = []
    for k in range(2):
        code, _, err = run(capsys, "restore", tmp_path / "in", *NOTHING, "--out-dir", out_dir, "--shard", f"{k}/2")
        assert code == 0, err
        now = sorted(p.name for p in out_dir.glob("*.wav"))
        written.append([n for n in now if n not in sum(written, [])])
    assert written == [["t0.restored.wav", "t2.restored.wav", "t4.restored.wav"],
                       ["t1.restored.wav", "t3.restored.wav"]]
    code, _, err = run(capsys, "restore", tmp_path / "in", *NOTHING, "--out-dir", out_dir)
    assert code == 2 and "exists" in err  # without --skip-existing or --overwrite
    code, out, err = run(capsys, "restore", tmp_path / "in", *NOTHING, "--out-dir", out_dir, "--recursive",
                         "--skip-existing")
    assert code == 0, err
    assert (out_dir / "sub" / "deep.restored.wav").exists() and not (out_dir / ".hidden").exists()
    assert "1 restored, 5 skipped" in out


def test_help_is_fast_and_imports_no_torch():
    """Building the whole `a2sb` parser (every command) imports none of the heavy parts: `a2sb --help`
    answers in a fraction of a second."""
    heavy = ("torch", "scipy", "matplotlib", "gradio", "a2sb.network", "a2sb.restorer", "a2sb.evaluate",
             "a2sb.training")
    code = ("import sys\n"
            "from a2sb.cli import build_parser\n"
            "build_parser()\n"
            f"print(sorted(m for m in {heavy!r} if m in sys.modules))")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert result.stdout.strip() == "[]"


def test_restore_help_is_short_and_grouped(capsys):
    with pytest.raises(SystemExit):
        main(["restore", "--help"])
    text = capsys.readouterr().out
    options = [line for line in text.splitlines() if line.strip().startswith("-") and not line.strip().startswith("-h")]
    assert len(options) <= 17  # 16 before --holes (codec repair)
    for group in ("what to restore:", "output:", "folders:", "how:"):
        assert group in text
    assert "INPUT" in text and "--seed" in text and "(default: auto)" in text


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.startswith("a2sb ")


def test_progress_and_cancel(tmp_path, model_dir):
    import threading

    from a2sb.restorer import Cancelled

    src = tmp_path / "in.wav"
    sf.write(src, tone(1.0).T, SR)
    restorer = Restorer(model_dir, device="cpu")
    calls = []
    report = restorer.restore_file(src, tmp_path / "out.wav", cutoff=5000, gaps=None,
                                   progress=lambda done, total: calls.append((done, total)))
    assert calls and calls[-1][0] == calls[-1][1] and all(a <= b for (a, _), (b, _) in zip(calls, calls[1:]))
    assert report.output.exists() and "regenerated the band above 5.0 kHz" in report.describe()
    cancel = threading.Event()

    def stop_halfway(done, total):
        if 2 * done >= total:
            cancel.set()

    with pytest.raises(Cancelled):
        restorer.restore_file(src, tmp_path / "cancelled.wav", cutoff=5000, gaps=None, progress=stop_halfway,
                              cancel=cancel)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav", "out.wav"]  # nothing left behind


def test_gap_times_in_minutes_and_seconds():
    from a2sb.errors import A2SBError
    from a2sb.plan import parse_gaps

    assert parse_gaps("0:12.0-0:12.4, 1:04.5-1:04.8,75-75.5") == [(12.0, 12.4), (64.5, 64.8), (75.0, 75.5)]
    assert parse_gaps("1:00:00-1:00:01") == [(3600.0, 3601.0)]
    for bad in ("1:75-1:76", "a-b", "3-2", "5"):
        with pytest.raises(A2SBError):
            parse_gaps(bad)
    with pytest.raises(A2SBError, match="got '1'") as err:
        parse_gaps([(1,)])
    assert "(1,)" not in str(err.value)


@pytest.mark.parametrize("subtype, rate", [("VORBIS", SR), ("OPUS", 48000)])
def test_ogg_files_are_read_exactly_anywhere(tmp_path, subtype, rate):
    """libsndfile's seeks in Ogg Vorbis and Opus are not sample exact (a read after a seek can start off or
    with a wrongly lapped first block): FileWave decodes forward to a later read, and the first read
    further back decodes the file once into a temporary copy, so any read gives the samples of a
    whole-file decode; the copy goes with close()."""
    import tempfile

    from a2sb.audio import FileWave

    if subtype not in sf.available_subtypes("OGG"):
        pytest.skip(f"this libsndfile cannot write {subtype}")
    g = np.random.default_rng(4)
    t = np.arange(6 * rate) / rate
    x = np.stack([0.3 * np.sin(2 * np.pi * 440 * t * (1 + 0.1 * np.sin(t))), 0.2 * g.standard_normal(t.size)])
    path = tmp_path / "in.ogg"
    sf.write(path, x.T.astype(np.float32), rate, format="OGG", subtype=subtype)
    whole, _ = sf.read(path, dtype="float32", always_2d=True)
    before = set(os.listdir(tempfile.gettempdir()))
    wave = FileWave(path, rate=None)
    for start in range(0, 2 * rate, 20011):  # in order, as the analysis reads: no copy
        assert np.array_equal(wave.read(start, start + 20011), whole[start:start + 20011].T)
    for start in range(3 * rate + 5000, whole.shape[0] - 3000, 33333):  # forward jumps, as the hole search
        assert np.array_equal(wave.read(start, start + 3000), whole[start:start + 3000].T)
    assert wave._copy is None
    starts = g.integers(0, whole.shape[0] - 3000, 60).tolist() + list(range(whole.shape[0] - 3000, whole.shape[0], 97))
    for start in starts:  # anywhere (measured before: 2-16 % of these were wrong)
        assert np.array_equal(wave.read(start, start + 3000), whole[start:start + 3000].T), start
    assert wave._copy is not None and os.path.exists(wave._copy)
    copy = wave._copy
    wave.close()
    assert not os.path.exists(copy) and set(os.listdir(tempfile.gettempdir())) <= before | {os.path.basename(copy)}
    forgotten = FileWave(path, rate=None)  # a reader nobody closes: its copy goes with it
    forgotten.read(rate, rate + 100)
    forgotten.read(0, 100)
    copy = forgotten._copy
    assert os.path.exists(copy)
    del forgotten
    assert not os.path.exists(copy)
