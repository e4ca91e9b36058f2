"""`a2sb bench quality --task codec` end to end with a tiny random model, and its encoder and alignment."""

import json

import numpy as np
import soundfile as sf

from a2sb.cli import main
from a2sb.codecs import align, encode_file

SR = 44100
MP3_RATES = (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)  # MPEG-1 layer III, kbit/s


def music(seconds=2.0, seed=0):
    """Stereo, full band: harmonic tones, a little noise and hi-hat-like bursts every 0.25 s."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    tone = sum(np.sin(2 * np.pi * 220 * k * t + k) / k for k in range(1, 40))
    bursts = np.zeros_like(t)
    for start in np.arange(0.1, seconds - 0.1, 0.25):
        first = int(start * SR)
        bursts[first : first + 2000] += rng.standard_normal(2000) * np.exp(-np.arange(2000) / 300)
    left = 0.05 * tone + 0.2 * bursts + 0.003 * rng.standard_normal(len(t))
    right = 0.05 * np.roll(tone, 30) + 0.2 * bursts + 0.003 * rng.standard_normal(len(t))
    return np.stack([left, right]).astype(np.float32)


def test_encode_finds_the_nearest_bitrate_and_align_undoes_the_delay(tmp_path):
    x = music(1.0)
    encoded = encode_file(x, SR, "mp3", 128, tmp_path / "clip")
    assert encoded.path.suffix == ".mp3" and encoded.path.is_file()
    # CBR at a standard bitrate (the file's header and padding add a little over 1 s)
    assert 112 <= encoded.kbps <= 150 and 0 <= encoded.level <= 1
    decoded, rate = sf.read(str(encoded.path), always_2d=True)
    assert rate == SR and decoded.shape[1] == 2
    assert align(decoded.T, x, x.shape[-1]).shape == x.shape
    delayed = np.concatenate([np.zeros((2, 1105), np.float32), x], axis=1)
    assert np.array_equal(align(delayed, x, x.shape[-1]), x)  # a pure delay is undone exactly
    opus = encode_file(x, SR, "opus", 64, tmp_path / "clip")
    assert opus.path.suffix == ".opus" and opus.rate == 48000


def test_bench_quality_codec_end_to_end(tmp_path, capsys, model_dir):
    clean = tmp_path / "clean"
    clean.mkdir()
    sf.write(clean / "song.flac", music(1.2).T, SR, subtype="PCM_24")  # short: the network is the slow part
    out = tmp_path / "codec.json"
    args = ["bench", "quality", str(clean), "--task", "codec", "--codec", "mp3", "--bitrate", "64",
            "--model", str(model_dir), "--json", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "mp3 at 64 kbit/s asked" in printed and "| decode" in printed and "| a2sb" in printed
    assert "hole_share" in printed and "onset_corr" in printed and "a2sb minus" in printed
    result = json.loads(out.read_text())
    assert result["settings"]["task"] == "codec" and result["settings"]["bitrate_kbps"] == 64
    records = {r["method"]: r for r in result["files"]}
    assert list(records) == ["decode", "sbr", "a2sb"]
    decode = records["decode"]
    assert min(MP3_RATES, key=lambda rate: abs(rate - decode["actual_kbps"])) in (56, 64, 80)
    assert decode["cutoff_hz"] is not None and 8000 < decode["cutoff_hz"] < 20000  # LAME's lowpass at 64 kbit/s
    for record in records.values():
        assert record["cutoff_hz"] == decode["cutoff_hz"] and record["actual_kbps"] == decode["actual_kbps"]
        assert record["hole_share"] == decode["hole_share"]  # a property of the decode
        assert {"lsd_below", "hole_lsd", "lsd_oct1", "bias_ne_db", "onset_corr", "coherence"} <= record.keys()
    assert records["a2sb"]["restorer_cutoff_hz"] is not None  # what restore_file found on the .mp3 itself
    # The plain decode is empty above its cutoff; SBR puts something there.
    assert records["sbr"]["lsd_high"] < decode["lsd_high"]
    # SBR keeps everything below 0.9 x the cutoff and only tops up what the decode lacks up to the cutoff.
    assert records["sbr"]["lsd_below"] <= decode["lsd_below"] + 1e-6
    assert result["paired"]["all"]["baseline"] in ("decode", "sbr")
