"""Our composer for the rendered training set (scripts/make_example.py): the rock style's MIDI, the
recipe of scripts/prepare_data.py --rendered, the tail trim, and prepare_data's licence lookup for
members of pk3 archives. No FluidSynth needed."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def _load(name):
    if name not in sys.modules:
        sys.path.insert(0, str(SCRIPTS))
        spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="module")
def me():
    return _load("make_example")


def test_describe_midi_reads_what_the_writer_wrote(me):
    m = me.Midi(150)
    m.setup(0, 30)
    m.setup(3, 34)
    m.setup(me.DRUMS, 16)
    m.note(0, 40, 0.0, 1.0, 100)
    m.note(0, 47, 0.0, 1.0, 100)
    m.note(3, 28, 0.5, 0.5, 90)
    m.note(me.DRUMS, 49, 2.0, 2.0, 110)
    m.note(me.DRUMS, 36, 0.0, 0.5, 110)
    m.bend(0, 0.25, 1.0)
    info = me.describe_midi(m.to_bytes())
    assert info["bpm"] == pytest.approx(150, rel=1e-3)
    assert info["programs"] == {0: 30, 3: 34, me.DRUMS: 16}
    assert info["notes"] == {0: 2, 3: 1, me.DRUMS: 2}
    assert info["drum_keys"] == [36, 49]
    assert info["bends"] == 1
    assert info["beats"] == pytest.approx(4.0)
    assert me.instrument_names(info) == ["ch1 Distortion Guitar (30)", "ch4 Pick Bass (34)", "drums: Power kit"]


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5])
def test_rock_piece_has_distorted_guitars_bass_and_a_full_kit(me, seed):
    seconds = 60.0
    info = me.describe_midi(me.compose_rock_piece(seed, seconds))
    played = {ch: info["programs"].get(ch, 0) for ch, n in info["notes"].items() if n and ch != me.DRUMS}
    guitars = [ch for ch, p in played.items() if p in (29, 30)]
    assert len(guitars) >= 2  # rhythm (and its double) plus the lead
    assert any(p in (33, 34) for p in played.values())
    keys = set(info["drum_keys"])
    assert info["notes"][me.DRUMS] > 200
    assert {36, 38} <= keys  # kick, snare
    assert keys & {42, 44, 46}  # hi-hats
    assert keys & {49, 57}  # crash
    assert keys & {51, 53}  # ride
    assert keys & {41, 43, 45, 47, 48, 50}  # toms (fills)
    assert info["bpm"] >= 96
    length = info["beats"] * 60 / info["bpm"]
    assert seconds <= length <= seconds + 6


def test_rock_piece_is_deterministic_per_seed(me):
    assert me.compose_rock_piece(7, 30.0) == me.compose_rock_piece(7, 30.0)
    assert me.compose_rock_piece(7, 30.0) != me.compose_rock_piece(8, 30.0)
    assert me.compose_styled_piece("rock", 7, 30.0) == me.compose_rock_piece(7, 30.0)
    assert me.compose_styled_piece("mixed", 7, 30.0) == me.compose_random_piece(7, 30.0)


def test_rendered_recipe_is_versioned_forty_percent_rock_and_mostly_drums():
    pd = _load("prepare_data")
    me = _load("make_example")
    pieces = [pd.rendered_piece(i) for i in range(20)]
    names = [name for name, _, _ in pieces]
    assert len(set(names)) == len(names) and all(n.startswith(pd.RENDERED_VERSION + "-") for n in names)
    assert not any(n.startswith("piece") for n in names)  # never the first recipe's names
    assert len({seed for _, seed, _ in pieces}) == len(pieces)
    assert sum(style == "rock" for _, _, style in pieces) == 8
    with_drums = sum(
        bool(me.describe_midi(me.compose_styled_piece(style, seed, 20.0))["notes"].get(me.DRUMS))
        for _, seed, style in pieces
    )
    assert with_drums >= 14


def test_trim_tail_cuts_the_silent_end_with_a_fade(me):
    rate = me.SAMPLE_RATE
    t = np.arange(rate) / rate
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    audio = np.stack([np.concatenate([tone, np.zeros(2 * rate)])] * 2).astype(np.float32)
    out = me.trim_tail(audio, -60.0)
    assert rate <= out.shape[1] <= rate + int(0.1 * rate) + 1
    assert np.array_equal(out[:, : rate // 2], audio[:, : rate // 2])
    assert abs(out[0, -1]) < 1e-3


def test_pk3_member_takes_the_licence_of_the_stanza_naming_it(tmp_path):
    pd = _load("prepare_data")
    pkg = tmp_path / "ufoai-music"
    (pkg / "usr/share/games/ufoai/base").mkdir(parents=True)
    (pkg / "usr/share/games/ufoai/base/0music.pk3").write_bytes(b"")
    named, other = pkg / "pk3/0music/music/David01.ogg", pkg / "pk3/0music/music/unlisted.ogg"
    stanzas = pd.dep5_stanzas(
        "Files: *\nCopyright: The Team\nLicense: GPL-2+\n\n"
        "Files:\n base/music/David01.ogg\n base/music/van_theme.ogg\nCopyright: David\nLicense: CC-BY-3.0\n"
    )

    def licence(path):
        return pd.file_licence(stanzas, pkg, path, "GPL-2+")

    assert pd.licence_paths(pkg, named) == [
        "usr/share/games/ufoai/base/music/David01.ogg",
        "usr/share/games/ufoai/base/0music.pk3",
    ]
    assert licence(named) == ("CC-BY-3.0", "David")
    assert licence(other)[0] == "GPL-2+"
    plain = pkg / "usr/share/games/ufoai/base/music/x.ogg"
    assert pd.licence_paths(pkg, plain) == ["usr/share/games/ufoai/base/music/x.ogg"]
