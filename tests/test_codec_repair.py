"""Codec repair on the restore side (docs/method.md §Masks): a lossy decode is called one, its holes are
measured and put in the mask, the rest of the picture is kept, and the user can turn it off."""

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from a2sb import analysis
from a2sb.cli import main
from a2sb.errors import A2SBError
from a2sb.holes import HOLE_GATE_SHARE, MARGIN_FRAMES, first_hole_row, hole_cells
from a2sb.masks import HoleCells, PictureMask
from a2sb.picture import WaveformPicture
from a2sb.plan import LOSSLESS_COPY, check_plan
from a2sb.representation import istft, representation_to_spec, row_of_frequency, stft, to_representation
from a2sb.restorer import Restorer
from a2sb.sampler import PositionalNoise, sample, time_grid

sys.path.insert(0, str(Path(__file__).parent))
from test_restorer import ToyModel  # noqa: E402

SR = 44100
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "example.flac"
FAST = dict(steps=3, window=32, hop=16, batch_size=8)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """4 s of the example as FLAC, as an MP3 (LAME at ~80 kbit/s), and the MP3's decode as a WAV."""
    folder = tmp_path_factory.mktemp("codec")
    x, _ = sf.read(EXAMPLE, dtype="float32", frames=4 * SR)
    flac, mp3, wav = folder / "song.flac", folder / "song.mp3", folder / "decoded.wav"
    sf.write(flac, x, SR, subtype="PCM_16")
    sf.write(mp3, x, SR, format="MP3", subtype="MPEG_LAYER_III", compression_level=0.85, bitrate_mode="CONSTANT")
    decoded, _ = sf.read(mp3, dtype="float32")
    sf.write(wav, decoded, SR, subtype="FLOAT")
    return dict(flac=flac, mp3=mp3, wav=wav, decoded=decoded.T.copy())


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_an_mp3_is_a_lossy_codec_with_holes_and_the_plan_says_so(files):
    plan = analysis.plan_file(str(files["mp3"]))
    assert plan.codec.startswith("MP3, ") and plan.codec.endswith(" kbit/s")
    assert 60 <= int(plan.codec.split()[1]) <= 100  # file size / duration of a ~80 kbit/s CBR file
    assert plan.holes and HOLE_GATE_SHARE <= plan.hole_share < 0.15
    assert plan.cutoff_hz is not None and 11000 < plan.cutoff_hz < 17000
    assert plan.hole_top_hz == pytest.approx(plan.cutoff_hz, rel=0.01)
    line = plan.findings[0]
    assert line.startswith(f"lossy codec ({plan.codec}): brick-wall lowpass at ")
    assert f"holes in {100 * plan.hole_share:.1f} % of the band below it" in line
    assert line.endswith("the band above and the holes are regenerated")
    assert not plan.nothing_to_do()

    off = analysis.plan_file(str(files["mp3"]), holes="off")
    assert not off.holes and off.hole_share is None and off.codec == plan.codec
    assert off.findings[0].endswith("the band above it is regenerated; holes left as they are (given)")
    # holes alone (the band kept): still a restoration, described with the band they were looked for in
    only = analysis.plan_file(str(files["mp3"]), cutoff="off")
    assert only.holes and only.cutoff_hz is None and not only.nothing_to_do()
    assert "holes in" in only.findings[0] and "of the band below" in only.findings[0]
    assert only.findings[0].endswith(": regenerated")


def test_ogg_vorbis_is_named_and_the_codec_is_not_guessed_from_the_cutoff(tmp_path):
    x, _ = sf.read(EXAMPLE, dtype="float32", frames=2 * SR)
    sf.write(tmp_path / "v.ogg", x, SR, format="OGG", subtype="VORBIS", compression_level=0.9)
    plan = analysis.plan_file(str(tmp_path / "v.ogg"))
    assert plan.codec.startswith("Ogg Vorbis, ") and plan.hole_share is not None
    assert plan.findings[0].startswith(f"lossy codec ({plan.codec}): ") and "MP3-like" not in plan.findings[0]
    assert plan.holes == (plan.hole_share >= HOLE_GATE_SHARE)


def test_the_flac_original_is_not_lossy_and_a_lossless_copy_of_the_decode_is(files):
    plan = analysis.plan_file(str(files["flac"]))
    assert plan.codec == "" and not plan.holes and plan.hole_share is None
    assert not any("lossy" in line or "holes" in line for line in plan.findings)
    copy = analysis.plan_file(str(files["wav"]))
    assert copy.codec == LOSSLESS_COPY and copy.holes and copy.hole_share >= HOLE_GATE_SHARE
    assert copy.findings[0].startswith(f"lossy codec ({LOSSLESS_COPY}): brick-wall lowpass")
    array = analysis.plan_array(files["decoded"], SR)
    assert array.holes and array.codec == LOSSLESS_COPY
    assert abs(array.hole_share - copy.hole_share) < 0.002
    assert not analysis.plan_array(files["decoded"], SR, holes="off").holes


def test_the_mask_holds_the_hole_cells_of_the_spectrum(files):
    x = files["decoded"]
    picture = WaveformPicture(lambda a, b: x[:, a:b], x.shape[1])
    cutoff = 13000.0
    row = row_of_frequency(cutoff)
    holes = HoleCells(picture.spectrum, picture.frames, cutoff)
    mask = PictureMask(x.shape[1], cutoff, [], holes)
    assert mask.mode == "whole"
    whole = hole_cells(picture.spectrum(0, picture.frames), row)  # the whole recording at once
    for a, b in [(0, 32), (100, 132), (116, 148), (picture.frames - 32, picture.frames)]:
        m = mask(a, b)[0, 0] > 0
        assert m.shape == (1024, b - a)
        assert m[row:].all()  # the band above the cutoff
        assert not m[:first_hole_row()].any()  # nothing below 2 kHz
        lo, hi = max(0, a - MARGIN_FRAMES), min(picture.frames, b + MARGIN_FRAMES)
        own = hole_cells(picture.spectrum(lo, hi), row)[:, a - lo:b - lo]
        assert torch.equal(own, holes.cells(a, b))
        assert torch.equal(m[:row], own[:row])  # (the mask's come from aligned blocks: the same cells)
        assert (m[:row] != whole[:row, a:b]).float().mean() < 1e-3  # the same cells, window or whole
    share = float(whole[first_hole_row():row].float().mean())
    assert share >= HOLE_GATE_SHARE
    # without holes the mask below the cutoff is empty
    assert not (PictureMask(x.shape[1], cutoff, [])(100, 132)[0, 0, :row] > 0).any()


def test_a_restoration_with_holes_is_the_sampler_on_the_hole_mask_and_keeps_the_rest(files):
    """Mono 0.6 s of the decode: the restorer == the reference sampler on the whole picture with the mask
    rows >= cutoff + hole cells; the band below 2 kHz (never masked) comes back as it was."""
    x = files["decoded"][:1, SR:SR + int(0.6 * SR)].copy()
    cutoff, toy = 13000.0, ToyModel().eval()
    restorer = Restorer(model=toy, seed=3, peak_safety=False, band_level="off", **FAST)
    y, rate = restorer.restore_audio(x[0], SR, cutoff=cutoff, gaps=None, holes=True)
    y = y[None]
    assert rate == SR and y.shape == x.shape
    length = x.shape[1]
    extended = np.pad(x, ((0, 0), (0, -length % 512)), mode="reflect")
    spec = stft(torch.from_numpy(extended))
    x0 = to_representation(torch.from_numpy(extended))
    width = x0.shape[-1]
    row = row_of_frequency(cutoff)
    mask = torch.zeros(1, 1, 1024, width)
    mask[:, :, row:] = 1
    cells = hole_cells(spec, row)
    assert int(cells.sum()) > 100
    mask[0, 0] = torch.maximum(mask[0, 0], cells.float())
    x1 = x0 * (1 - mask) + mask * 0.5 * PositionalNoise(3, 1024, 3).frames(-1, 0, [0], 0, width)
    out = sample(lambda w, t: toy.predict_noise(w, t), x1, mask, time_grid(3), window=32, hop=16, seed=3)
    assert torch.equal(out * (1 - mask), x0 * (1 - mask))  # the sampler keeps every unmasked cell
    out_spec = representation_to_spec(out, phase_fix=True)
    out_spec[..., :1, :] = spec[..., :1, :]  # the input's DC row, which the picture leaves out
    reference = istft(out_spec)[:, :length].numpy()
    assert np.abs(y - reference).max() <= 1e-4
    spec_in, spec_out = stft(torch.from_numpy(x)).numpy(), stft(torch.from_numpy(y)).numpy()
    below = slice(0, first_hole_row() - 3)  # bins whose neighbours (Hann main lobe) are never generated
    error = np.sum(np.abs(spec_out[:, below] - spec_in[:, below]) ** 2) / np.sum(np.abs(spec_in[:, below]) ** 2)
    assert 10 * np.log10(1 / error) >= 30
    # and the holes were filled: more energy there than the decode had
    held = cells[None].numpy()[:, :, :spec_in.shape[-1]]
    power_in = np.abs(spec_in[:, 1:][held[:, :, :spec_in.shape[-1]]]) ** 2
    power_out = np.abs(spec_out[:, 1:][held[:, :, :spec_out.shape[-1]]]) ** 2
    assert power_out.mean() > 3 * power_in.mean()  # (8.5 times with the toy network)


def test_restore_file_reports_the_holes_and_the_plan_can_turn_them_off(files, tmp_path):
    src = tmp_path / "short.mp3"
    x, _ = sf.read(files["mp3"], dtype="float32", frames=int(1.5 * SR))
    sf.write(src, x, SR, format="MP3", subtype="MPEG_LAYER_III", compression_level=0.85, bitrate_mode="CONSTANT")
    restorer = Restorer(model=ToyModel().eval(), peak_safety=False, **FAST)
    plan = restorer.analyse(src)
    if not plan.holes:  # a short excerpt may fall under the gate: ask for the repair
        plan = restorer.analyse(src, holes=True)
    report = restorer.restore_file(src, tmp_path / "out.flac", plan=plan)
    text = report.describe()
    assert f"regenerated the band above {plan.cutoff_hz / 1000:.1f} kHz and " in text
    assert f"{100 * plan.hole_share:.1f} % of the cells below it (codec holes)" in text
    off = dataclasses.replace(plan, holes=False)
    assert "codec holes" not in restorer.restore_file(src, tmp_path / "off.flac", plan=off).describe()
    with pytest.raises(A2SBError, match="holes must be True or False"):
        check_plan(dataclasses.replace(plan, holes="auto"))
    with pytest.raises(A2SBError, match="holes must be 'auto' or 'off'"):
        restorer.analyse(src, holes="sometimes")


def test_cli_dry_run_info_and_holes_off(files, capsys, tmp_path):
    code, out, err = run(capsys, "restore", files["mp3"], "--dry-run")
    assert code == 0, err
    assert "lossy codec (MP3, " in out and "the band above and the holes are regenerated" in out
    code, out, err = run(capsys, "restore", files["mp3"], "--dry-run", "--holes", "off")
    assert code == 0, err
    assert "holes left as they are (given)" in out
    code, out, err = run(capsys, "info", files["mp3"], files["flac"])
    assert code == 0, err
    assert "lossy codec (MP3, " in out and "full band" in out and "nothing to restore" in out
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(b"not an mp3 at all" * 20)
    code, out, err = run(capsys, "info", bad)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and err.startswith("a2sb: error:")
    code, _, err = run(capsys, "info", files["flac"], bad)
    assert code == 2 and "a2sb: error:" in err


def test_a_low_bitrate_mp3_whose_header_overstates_its_length_is_restored(tmp_path):
    # LAME at ~56 kbit/s through libsndfile: the header says 2 082 samples more than decode (it was refused
    # as "truncated"); the decoded count is the file's length everywhere.
    x, _ = sf.read(EXAMPLE, dtype="float32")
    mp3 = tmp_path / "low.mp3"
    sf.write(mp3, x, SR, format="MP3", subtype="MPEG_LAYER_III", compression_level=0.9, bitrate_mode="CONSTANT")
    decoded, _ = sf.read(mp3, dtype="float32")
    assert sf.info(str(mp3)).frames > len(decoded)  # the libsndfile behaviour this guards against
    from a2sb.audio import audio_info

    assert audio_info(mp3).frames == len(decoded)
    plan = analysis.plan_file(str(mp3))
    assert plan.frames == len(decoded) and plan.codec.startswith("MP3") and plan.cutoff_hz is not None
    out = tmp_path / "low.restored.flac"
    Restorer(ToyModel(), **FAST).restore_file(mp3, out, holes="off")
    assert sf.info(str(out)).frames == len(decoded)
