"""Damaged input files are refused with one line and exit 2, before any output is written; outputs get
the permissions of any new file (0666 less the umask)."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import struct
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from a2sb.audio import AudioWriter, audio_info, write_audio
from a2sb.cli import main
from a2sb.errors import A2SBError

SR = 44100
NOTHING = ["--cutoff", "off", "--gaps", "off", "--holes", "off"]  # validation and I/O only, no network


def music(seconds=0.4, channels=2, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    x = np.stack([0.3 * np.sin(2 * np.pi * (330 + 110 * c) * t) for c in range(channels)])
    return (x + 0.02 * rng.standard_normal(x.shape)).astype(np.float32)


def encoded(fmt: str, subtype: str, seconds=0.4) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, music(seconds).T, SR, format=fmt, subtype=subtype)
    return buffer.getvalue()


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def refused(code, err, *words):
    assert code == 2, err
    assert err.startswith("a2sb: error:") and err.count("\n") == 1, err
    assert all(w in err for w in words), err
    return True


# ----------------------------------------------------------------------------------------- truncation

def test_wav_cut_after_100_bytes_is_refused(tmp_path, capsys):
    data = encoded("WAV", "PCM_16")
    src = tmp_path / "cut.wav"
    src.write_bytes(data[:100])
    assert sf.info(src).frames == 14  # libsndfile keeps what is there and does not complain
    for argv in (["info", src], ["restore", src, *NOTHING]):
        code, out, err = run(capsys, *argv)
        assert refused(code, err, "truncated", "promises 70560 bytes", "holds 56") and out == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.wav"]


@pytest.mark.parametrize("fmt,subtype", [("WAV", "FLOAT"), ("RF64", "PCM_24"), ("AIFF", "PCM_16"),
                                         ("AU", "PCM_16"), ("WAVEX", "PCM_16")])
def test_header_promising_more_than_the_file_holds(tmp_path, fmt, subtype):
    data = encoded(fmt, subtype)
    whole = tmp_path / "whole"
    whole.write_bytes(data)
    assert audio_info(whole, verify=True).frames == int(0.4 * SR)
    for keep in (len(data) - 1, len(data) // 2, 200):
        cut = tmp_path / f"cut{keep}"
        cut.write_bytes(data[:keep])
        with pytest.raises(A2SBError, match="is truncated: its header promises"):
            audio_info(cut)


def test_open_ended_wav_header_is_accepted(tmp_path):
    # streaming writers leave the data size at 0xFFFFFFFF: not a promise, libsndfile reads to the end
    data = bytearray(encoded("WAV", "PCM_16"))
    data[40:44] = struct.pack("<I", 0xFFFFFFFF)
    src = tmp_path / "stream.wav"
    src.write_bytes(bytes(data))
    assert audio_info(src, verify=True).frames == int(0.4 * SR)


def _ogg_pages(data: bytes) -> list[tuple[int, int]]:
    pages, pos = [], 0
    while pos < len(data):
        segments = data[pos + 26]
        end = pos + 27 + segments + sum(data[pos + 27:pos + 27 + segments])
        pages.append((pos, end))
        pos = end
    return pages


def test_ogg_checks(tmp_path):
    data = encoded("OGG", "VORBIS", seconds=2.0)
    pages = _ogg_pages(data)
    assert len(pages) > 4

    def check(name, blob):
        path = tmp_path / f"{name}.ogg"
        path.write_bytes(blob)
        audio_info(path)  # the cheap check does not read Ogg pages
        with pytest.raises(A2SBError) as info:
            audio_info(path, verify=True)
        return str(info.value)

    # cut inside the last page, and cut exactly after a page (no end-of-stream page)
    assert "last Ogg page is incomplete" in check("cut", data[:-10])
    assert "without its end-of-stream page" in check("short", data[:pages[-2][1]])
    # a flipped byte in a page body, a missing page in the middle
    flipped = bytearray(data)
    flipped[pages[3][0] + 60] ^= 0x10
    assert "checksum mismatch" in check("flipped", bytes(flipped))
    middle = pages[len(pages) // 2]
    assert "pages missing" in check("hole", data[:middle[0]] + data[middle[1]:])
    # trailing bytes after the stream has ended are ignored
    path = tmp_path / "tail.ogg"
    path.write_bytes(data + b"\x00" * 100)
    assert audio_info(path, verify=True).frames == 2 * SR


# -------------------------------------------------------------------------------------------- fuzzing

def _corruptions(rng: np.random.Generator, data: bytes, header: int):
    """(name, damaged bytes): truncations at many offsets, bit flips and random bytes in the header and
    in the body, random bytes behind the right magic, pure noise."""
    n = len(data)
    offsets = sorted({*range(0, min(header, n), 5), *rng.integers(header, n, 30).tolist(), n - 1, n - 3})
    for keep in offsets:
        yield f"cut at {keep}", data[:keep]
    for where, lo, hi in (("header", 0, header), ("body", header, n)):
        for _ in range(20):
            damaged = bytearray(data)
            for i in rng.integers(lo, hi, int(rng.integers(1, 4))):
                damaged[i] ^= 1 << int(rng.integers(8))
            yield f"{where} flips", bytes(damaged)
        damaged = bytearray(data)
        start = int(rng.integers(lo, hi - 16))
        damaged[start:start + 16] = rng.integers(0, 256, 16, dtype=np.uint8).tobytes()
        yield f"{where} random run", bytes(damaged)
    yield "magic then noise", data[:4] + rng.integers(0, 256, 3000, dtype=np.uint8).tobytes()
    yield "noise", rng.integers(0, 256, 3000, dtype=np.uint8).tobytes()


FUZZ_FORMATS = [("WAV", "PCM_16", ".wav", 44), ("FLAC", "PCM_16", ".flac", 42), ("OGG", "VORBIS", ".ogg", 4000)]


@pytest.mark.parametrize("fmt,subtype,suffix,header", FUZZ_FORMATS)
def test_fuzz_damaged_files_exit_0_or_2_without_traceback_or_leftovers(tmp_path, capsys, fmt, subtype, suffix,
                                                                        header):
    rng = np.random.default_rng(14)
    data = encoded(fmt, subtype)
    header = min(header, len(data) // 4)
    checksummed = fmt in ("FLAC", "OGG")  # FLAC frames and Ogg pages carry CRCs; PCM samples do not
    outcomes = {0: 0, 2: 0}
    cases = list(_corruptions(rng, data, header))
    assert len(cases) >= 80
    for i, (name, blob) in enumerate(cases):
        folder = tmp_path / str(i)
        folder.mkdir()
        src = folder / f"in{suffix}"
        src.write_bytes(blob)
        digest = hashlib.sha256(blob).hexdigest()
        out = folder / "out.wav"
        argv = ["restore", src, "-o", out, *NOTHING] if i % 2 else ["info", src, "--json"]
        try:
            code, _, err = run(capsys, *argv)
        except BaseException as exc:  # SystemExit included: a damaged file is no usage error
            pytest.fail(f"{fmt} {name}: {argv[0]} raised {type(exc).__name__}: {exc}")
        assert code in (0, 2), (fmt, name, code, err)
        assert "Traceback" not in err, (fmt, name, err)
        outcomes[code] += 1
        if code == 2:
            assert err.startswith("a2sb: error:") and err.count("\n") == 1, (fmt, name, err)
            assert sorted(p.name for p in folder.iterdir()) == [src.name], (fmt, name)  # no output, no temp
        elif argv[0] == "restore":  # a success is a whole file of the length the input decodes to
            assert sorted(p.name for p in folder.iterdir()) == sorted([src.name, out.name]), (fmt, name)
            assert sf.info(out).frames == len(sf.read(src, dtype="float32")[0]), (fmt, name)
        assert hashlib.sha256(src.read_bytes()).hexdigest() == digest, (fmt, name)  # input untouched
        if name.startswith("cut") or "noise" in name or (name.startswith("body") and checksummed):
            assert code == 2, (fmt, name, err)  # truncated, noise, or a checksum that no longer matches
    # every truncation and noise case is refused; only flips inside PCM samples or unused header
    # fields can leave a readable file
    assert outcomes[2] >= 0.5 * sum(outcomes.values()), outcomes


@pytest.mark.parametrize("suffix", [".wav", ".ogg"])
def test_installed_entry_point_refuses_a_truncated_file(tmp_path, suffix):
    data = encoded("WAV" if suffix == ".wav" else "OGG", "PCM_16" if suffix == ".wav" else "VORBIS")
    src = tmp_path / f"cut{suffix}"
    src.write_bytes(data[:len(data) * 2 // 3])
    done = subprocess.run([sys.executable, "-c", "import sys; from a2sb.cli import main; sys.exit(main())",
                           "restore", str(src), *NOTHING], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("a2sb: error:") and done.stderr.count("\n") == 1, done.stderr
    assert "truncated" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [src.name]


# ----------------------------------------------------------------------------------------- permissions

@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    try:
        yield 0o640
    finally:
        os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_outputs_follow_the_umask(tmp_path, capsys, umask_027):
    write_audio(tmp_path / "a.flac", music(), SR)
    assert _mode(tmp_path / "a.flac") == umask_027
    with AudioWriter(tmp_path / "b.wav", SR, 2, "WAV", "FLOAT") as writer:
        writer.write(music())
    assert _mode(tmp_path / "b.wav") == umask_027
    src = tmp_path / "c.wav"
    sf.write(src, music().T, SR)
    code, _, err = run(capsys, "restore", src, *NOTHING)
    assert code == 0, err
    assert _mode(tmp_path / "c.restored.wav") == umask_027
    os.umask(0o002)
    write_audio(tmp_path / "d.wav", music(), SR)
    assert _mode(tmp_path / "d.wav") == 0o664
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.flac", "b.wav", "c.restored.wav", "c.wav", "d.wav"]


def test_failed_writes_leave_nothing(tmp_path):
    with pytest.raises(RuntimeError), AudioWriter(tmp_path / "x.flac", SR, 1, "FLAC", "PCM_24") as writer:
        writer.write(music(channels=1))
        raise RuntimeError("interrupted")
    with pytest.raises(sf.LibsndfileError):  # FLAC has at most 8 channels: the temporary goes too
        AudioWriter(tmp_path / "y.flac", SR, 9, "FLAC", "PCM_24")
    assert list(tmp_path.iterdir()) == []
