#!/usr/bin/env python3
"""Build the a2sb training corpus from freely licensed music shipped by Debian.

Steps (each one is skipped when its result is already there, so the script can be re-run or resumed):

1. ``apt-get download`` the packages in ``PACKAGES`` into ``data/debs``.
2. ``dpkg -x`` each package into ``data/pkgs/<package>``; unzip Nexuiz's ``music.pk3`` (a zip archive).
3. Collect the music tracks, record each package's licence (from ``usr/share/doc/*/copyright``) in
   ``data/LICENSES.txt``, and split BY TRACK with a hash of the track's path (train ~80 %, validation ~10 %,
   test ~10 %, at least 2 tracks each): ``data/splits.json``, ``data/music.csv``
   (``split,file_path,duration,estimated_true_sr``)
   and ``data/tracks.json`` (per-track details: package, licence, native rate, bandwidth estimate).
4. Pack the train and validation tracks as mono 44.1 kHz Ogg Vorbis into ``data/gpu_pack`` (under
   ``--pack-mib`` MiB, trimming long tracks when they do not fit) with a manifest ``data/gpu_pack/train.csv``
   whose paths are relative to ``data/gpu_pack``, so the folder can be carried to a machine without internet.
5. Optionally (``--rendered N``) render extra timbres with FluidSynth and the FluidR3 GM soundfont from
   music that this script composes itself (seeded: 40 % rock with overdriven / distortion guitars, bass and
   a full drum kit, the rest random General MIDI ensembles), into ``data/rendered`` with its own manifest
   ``data/rendered/rendered.csv`` (same columns, absolute paths, split by piece) and per-piece details in
   ``data/rendered/rendered.json`` (style, instruments, drums, power above 8 / 16 kHz). It is kept out of
   ``data/music.csv`` and ``data/splits.json`` so that validation and test stay real music.

Usage:  python scripts/prepare_data.py [--data-dir data] [--pack-mib 45] [--extra-dir DIR] [--rendered N]
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import scipy.signal
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
try:
    from a2sb.audio import read_audio
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT / "src"))
    from a2sb.audio import read_audio
from a2sb.training.manifests import estimate_true_sr  # noqa: E402

# Where each package keeps its music (relative to the unpacked package; "pk3" = the unzipped .pk3 archives).
# Only these Debian packages are used for training and our own evaluation; other music packages are kept
# for independent evaluation and must not be downloaded. Packages listed with None ship no music that
# libsndfile can decode (see docs/data.md): they are recorded, not used.
MUSIC_DIRS = {
    "singularity-music": "usr/share",
    "nexuiz-music": "pk3",
    "wesnoth-1.16-music": "usr/share",
    "ufoai-music": "pk3",
    "planetblupi-music-ogg": "usr/share/planetblupi/music",
    "drascula-music": "usr/share/scummvm/drascula/audio",  # its de/en/es/fr/it folders hold speech
    "asc-music": "usr/share/games/asc/music",
    "pushover-data": "usr/share/pushover/themes",
    "supertux-data": "usr/share/games/supertux2/music",
    "hedgewars-data": "usr/share/games/hedgewars/Data/Music",
    "freedroidrpg-data": "usr/share/freedroidrpg/data/sound/music",
    "widelands-data": "usr/share/games/widelands/data/music",
    "lincity-ng-data": "usr/share/games/lincity-ng/music",
    "supertuxkart-data": "usr/share/games/supertuxkart/data/music",
    "boswars-data": None,  # only an intro video (Ogg Theora) and sound effects
    "fb-music-high": None,  # one tracker module (.xm): not audio libsndfile can read
}
# Whole packages held out as the test set: never trained on, never used for choices made while
# training; different styles (hedgewars: varied game themes incl. rock; widelands: orchestral and
# folk; freedroidrpg: electronic, ambient and metal).
HELDOUT_PACKAGES = ("hedgewars-data", "widelands-data", "freedroidrpg-data")
MUSIC_PACKAGES = tuple(p for p, d in MUSIC_DIRS.items() if d is not None)
PACKAGES = (*MUSIC_DIRS, "fluid-soundfont-gm")
AUDIO_EXTENSIONS = {".ogg", ".oga", ".flac", ".mp3", ".wav"}
SAMPLE_RATE = 44100
MIN_NATIVE_RATE = 44100  # a track stored at a lower rate cannot hold the band we want to restore
MIN_DURATION = 5.0
MIN_LEVEL_DB = -60.0  # RMS of a track's middle 30 s: quieter tracks (Wesnoth ships a silence.ogg) are left out
SPLIT_BOUNDS = (("train", 0.8), ("validation", 0.9), ("test", 1.0))
MIN_PER_SPLIT = 2
VORBIS_LEVEL = 0.5  # libsndfile compression level; 0.5 = Vorbis quality 5, measured transparent to ~20 kHz
VALIDATION_CAP_S = 120.0  # validation needs only a few crops per track: keep the pack's room for training
WRITE_BLOCK = 8192  # libsndfile's Vorbis writer can crash on very large single writes: write in blocks

# What the copyright files say, checked against the text when it is read (see licence_of()).
KNOWN_LICENCES = {
    "singularity-music": ("CC-BY-SA-3.0", "Max McCracken (Endgame: Singularity soundtrack)"),
    "nexuiz-music": ("GPL-2.0-or-later", "Alientrap / Lee Vermeulen and contributors (Nexuiz soundtrack)"),
    "wesnoth-1.16-music": ("GPL-2.0-or-later", "The Battle for Wesnoth project and its composers (Wesnoth soundtrack)"),
    "fluid-soundfont-gm": ("MIT", "Frank Wen (Fluid R3 General MIDI soundfont)"),
}


def say(message: str) -> None:
    print(message, flush=True)


def run(cmd: list[str], cwd: Path | None = None) -> None:
    say("  $ " + " ".join(cmd))
    subprocess.run(cmd, cwd=cwd, check=True)


# ---------------------------------------------------------------------------------------------- 1-2: fetch


def download(data: Path) -> dict[str, Path]:
    debs = data / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    found = {}
    for pkg in PACKAGES:
        have = sorted(debs.glob(f"{pkg}_*.deb"))
        if have:
            say(f"[download] {pkg}: present ({have[-1].name}), skipping")
        else:
            say(f"[download] {pkg}: apt-get download into {debs}")
            try:
                run(["apt-get", "download", "-o", "APT::Sandbox::User=root", pkg], cwd=debs)
            except (subprocess.CalledProcessError, FileNotFoundError) as err:
                sys.exit(f"apt-get download {pkg} failed ({err}); run `apt-get update` first (needs Debian)")
            have = sorted(debs.glob(f"{pkg}_*.deb"))
        found[pkg] = have[-1]
    return found


def extract(data: Path, debs: dict[str, Path]) -> None:
    pkgs = data / "pkgs"
    pkgs.mkdir(parents=True, exist_ok=True)
    for pkg, deb in debs.items():
        target = pkgs / pkg
        marker = target / ".extracted"
        if marker.exists() and marker.read_text().strip() == deb.name:
            say(f"[extract] {pkg}: present, skipping")
            continue
        say(f"[extract] {pkg}: dpkg -x {deb.name} -> {target}")
        tmp = Path(tempfile.mkdtemp(prefix=f".{pkg}.", dir=pkgs))
        run(["dpkg", "-x", str(deb), str(tmp)])
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
        marker.write_text(deb.name + "\n")
    # Nexuiz and UFO:AI keep their soundtracks in Quake-style .pk3 files, which are zip archives.
    pk3s = [(pkg, pk3) for pkg, where in MUSIC_DIRS.items() if where == "pk3"
            for pk3 in sorted((pkgs / pkg / "usr").rglob("*.pk3"))]
    for pkg, pk3 in pk3s:
        out = pkgs / pkg / "pk3" / pk3.stem
        marker = out / ".unzipped"
        if marker.exists():
            say(f"[unzip] {pk3.name}: present, skipping")
            continue
        say(f"[unzip] {pk3.relative_to(pkgs)} -> {out.relative_to(data)}")
        with zipfile.ZipFile(pk3) as archive:
            for member in archive.infolist():
                name = Path(member.filename)
                if member.is_dir() or name.suffix.lower() not in AUDIO_EXTENSIONS or ".." in name.parts:
                    continue
                archive.extract(member, out)
        marker.write_text("done\n")


# ------------------------------------------------------------------------------------------ 3: licences


def copyright_text(pkg_dir: Path) -> str:
    texts = sorted(pkg_dir.glob("usr/share/doc/*/copyright"))
    return texts[0].read_text(errors="replace") if texts else ""


def licence_of(pkg_dir: Path) -> tuple[str, str, str]:
    """(SPDX-like id, holder, full copyright text) of an extracted package: the licence of its `Files: *`
    stanza when the copyright file is machine-readable (DEP-5), else recognised from the text."""
    text = copyright_text(pkg_dir)
    stanzas = dep5_stanzas(text)
    whole = [st for st in stanzas if "*" in st["files"]]
    if whole and whole[-1]["license"]:
        ident, holder = whole[-1]["license"], whole[-1]["copyright"]
    else:
        readmes = " ".join(
            p.read_text(errors="replace")
            for p in pkg_dir.glob("usr/share/doc/*/README*")
            if p.is_file() and p.suffix != ".gz"
        )
        both = (text + " " + readmes).lower()
        if "mit license" in both and "permission is hereby granted, free of charge" in both:
            ident = "MIT"
        elif "creative commons" in both and ("by-sa 3.0" in both or "attribution-sharealike 3.0" in both):
            ident = "CC-BY-SA-3.0"
        elif "gnu general public license" in both and "version 2" in both and "any later version" in both:
            ident = "GPL-2.0-or-later"
        else:
            ident = "UNKNOWN (read the text below)"
        holder = "see text"
    known = KNOWN_LICENCES.get(pkg_dir.name)
    if known:
        holder = known[1]
        if known[0] != ident and not (whole and whole[-1]["license"]):
            say(f"  WARNING: {pkg_dir.name}: copyright text reads as {ident}, expected {known[0]}: check it")
    return ident, holder, text


def dep5_stanzas(text: str) -> list[dict]:
    """The `Files:` stanzas of a machine-readable Debian copyright file: patterns, licence, copyright."""
    stanzas = []
    for block in re.split(r"\n\s*\n", text):
        fields, key = {}, None
        for line in block.splitlines():
            if line[:1] in (" ", "\t") and key:
                fields[key] += "\n" + line.strip()
            elif ":" in line:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                fields[key] = value.strip()
        if "files" in fields:
            stanzas.append({
                "files": fields["files"].split(),
                "license": fields.get("license", "").split("\n")[0].strip(),
                "copyright": " ".join(fields.get("copyright", "").split()),
            })
    return stanzas


def track_licence(stanzas: list[dict], installed: str, fallback: str | None) -> tuple[str | None, str]:
    """(licence, copyright) of one installed file: the last stanza with a pattern matching the end of
    its path. DEP-5 patterns name source-tree paths (data/music/x.ogg) that the package installs
    elsewhere (usr/share/games/x/music/x.ogg), so a pattern also matches with its leading folders
    dropped, as long as one folder is left; `*` also matches "/"."""
    parts = installed.split("/")
    suffixes = ["/".join(parts[i:]) for i in range(len(parts))]
    found = (fallback, "")
    for st in stanzas:
        for pattern in st["files"]:
            pieces = pattern.split("/")
            tails = ["/".join(pieces[i:]) for i in range(max(len(pieces) - 1, 1))]
            if pattern != "*" and any(fnmatch.fnmatchcase(sfx, tail) for tail in tails for sfx in suffixes):
                found = (st["license"] or fallback, st["copyright"])
    return found


def write_licences(data: Path) -> dict[str, str]:
    ids = {}
    parts = [
        "Licences of the third-party material that scripts/prepare_data.py downloads into data/.\n"
        "None of it is committed to the a2sb repository. The copyright files are quoted verbatim below;\n"
        "the licence of each track (from the stanza matching its path) is in data/tracks.json.\n"
    ]
    for pkg in PACKAGES:
        ident, holder, text = licence_of(data / "pkgs" / pkg)
        ids[pkg] = ident
        say(f"[licence] {pkg}: {ident} - {holder}")
        parts.append(f"\n{'=' * 78}\nPackage: {pkg}\nLicence: {ident}\nHolder: {holder}\n{'=' * 78}\n{text}")
    out = data / "LICENSES.txt"
    out.write_text("".join(parts))
    say(f"[licence] wrote {out}")
    return ids


# --------------------------------------------------------------------------------------- 3: tracks/split


def collect_tracks(data: Path, extra_dirs: list[Path] = ()) -> list[dict]:
    """Music tracks of the Debian packages, then of each --extra-dir (as package ``local:<folder name>``)."""
    pkgs = data / "pkgs"
    roots = [(pkg, pkgs / pkg / MUSIC_DIRS[pkg], lambda p: p.relative_to(pkgs).as_posix()) for pkg in MUSIC_PACKAGES]
    stanzas = {pkg: dep5_stanzas(copyright_text(pkgs / pkg)) for pkg in MUSIC_PACKAGES}
    for folder in extra_dirs:
        folder = folder.resolve()
        if not folder.is_dir():
            sys.exit(f"--extra-dir {folder}: not a folder")
        roots.append(
            (f"local:{folder.name}", folder, lambda p, f=folder: f"local/{f.name}/" + p.relative_to(f).as_posix())
        )
    tracks = []
    for pkg, base, relative in roots:
        for path in sorted(base.rglob("*")):
            if not path.is_file() or path.suffix.lower() not in AUDIO_EXTENSIONS:
                continue
            try:
                info = sf.info(str(path))
            except Exception as err:  # noqa: BLE001 - an unreadable file is reported and skipped
                say(f"[collect] skipped unreadable {path}: {err}")
                continue
            rel = relative(path)
            if info.samplerate < MIN_NATIVE_RATE or info.duration < MIN_DURATION:
                say(
                    f"[collect] excluded {rel}: {info.samplerate} Hz, {info.duration:.1f} s "
                    f"(need >= {MIN_NATIVE_RATE} Hz and >= {MIN_DURATION:.0f} s)"
                )
                continue
            level = level_db(str(path), info.duration)
            if level < MIN_LEVEL_DB:
                say(f"[collect] excluded {rel}: nearly silent ({level:.0f} dBFS RMS)")
                continue
            track = {
                "path": str(path.resolve()),
                "relpath": rel,
                "package": pkg,
                "native_rate": int(info.samplerate),
                "channels": int(info.channels),
                "duration": round(info.frames / info.samplerate, 3),
            }
            if pkg in stanzas:
                whole = [st["license"] for st in stanzas[pkg] if "*" in st["files"]]
                track["licence"], track["copyright"] = file_licence(
                    stanzas[pkg], pkgs / pkg, path, (whole or [None])[-1]
                )
            tracks.append(track)
    say(f"[collect] {len(tracks)} music tracks, {sum(t['duration'] for t in tracks) / 60:.1f} min")
    return tracks


def licence_paths(pkg_dir: Path, path: Path) -> list[str]:
    """The installed paths under which a track's licence is looked up, first match wins. A member of a
    pk3 archive (unpacked as pk3/<archive>/<member>) is named by its own path inside the archive, taken
    as unpacked beside it (UFO:AI's stanzas list base/music/<track>.ogg, which is in base/0music.pk3);
    if no stanza names it, it is licensed as the archive."""
    installed = path.relative_to(pkg_dir).as_posix()
    if not installed.startswith("pk3/"):
        return [installed]
    _, stem, member = installed.split("/", 2)
    archive = next((pkg_dir / "usr").rglob(f"{stem}.pk3")).relative_to(pkg_dir).as_posix()
    return [f"{archive.rsplit('/', 1)[0]}/{member}", archive]


def file_licence(stanzas: list[dict], pkg_dir: Path, path: Path, fallback: str | None) -> tuple[str | None, str]:
    """(licence, copyright) of a track of an unpacked package: from the stanza naming it under the first
    of its licence_paths() that one names, else (fallback, "")."""
    named = (track_licence(stanzas, c, None) for c in licence_paths(pkg_dir, path))
    return next((found for found in named if found[0]), (fallback, ""))


def level_db(path: str, duration: float) -> float:
    """RMS level (dBFS) of up to 30 s from the middle of a track."""
    start = max(0.0, duration / 2 - 15.0)
    audio, _ = read_audio(path, sample_rate=None, start=start, duration=min(30.0, duration))
    return float(10 * np.log10(np.mean(np.square(audio, dtype=np.float64)) + 1e-20))


# How versions of one piece are named, per package. Nexuiz: ``sixtyfour_`` and ``sixtyfour_revisited``
# (cut at the first "_"). Wesnoth uses "_" between words, and marks versions with a suffix:
# ``frantic`` / ``frantic-old``, ``battle`` / ``battle-epic``, ``defeat`` / ``defeat2``.
VERSION_SUFFIX = {"wesnoth-1.16-music": re.compile(r"(-old|-epic|\d+)$")}


def group_key(relpath: str) -> str:
    """Versions of one piece share a key, so they share a split (see VERSION_SUFFIX)."""
    path = Path(relpath)
    package = path.parts[0]
    if package in VERSION_SUFFIX:
        stem = VERSION_SUFFIX[package].sub("", path.stem.lower()) or path.stem.lower()
    else:
        stem = path.stem.lower().split("_")[0].strip() or path.stem.lower()
    return f"{path.parent.as_posix()}/{stem}"


def unit_hash(text: str) -> float:
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:16], 16) / 2.0**64


def split_of(u: float) -> str:
    for name, upper in SPLIT_BOUNDS:
        if u < upper:
            return name
    return SPLIT_BOUNDS[-1][0]


def assign_splits(tracks: list[dict]) -> None:
    """Deterministic split by the hash of each track's (piece-normalised) relative path; every track of a
    held-out package goes to the "heldout" split, outside the train/validation/test split."""
    heldout = [t for t in tracks if t["package"] in HELDOUT_PACKAGES]
    for t in heldout:
        t["hash"], t["split"] = unit_hash(group_key(t["relpath"])), "heldout"
    tracks = [t for t in tracks if t["package"] not in HELDOUT_PACKAGES]
    for t in tracks:
        t["hash"] = unit_hash(group_key(t["relpath"]))
        t["split"] = split_of(t["hash"])
    lower = {name: (SPLIT_BOUNDS[i - 1][1] if i else 0.0) for i, (name, _) in enumerate(SPLIT_BOUNDS)}
    upper = dict(SPLIT_BOUNDS)
    for name in ("validation", "test", "train"):
        while sum(t["split"] == name for t in tracks) < MIN_PER_SPLIT:
            donors = [
                t
                for t in tracks
                if sum(s["split"] == t["split"] for s in tracks) > MIN_PER_SPLIT and t["split"] != name
            ]
            if not donors:
                sys.exit("too few tracks to give every split at least two")
            # move the whole piece whose hash lies closest to this split's interval
            best = min(donors, key=lambda t: min(abs(t["hash"] - lower[name]), abs(t["hash"] - upper[name])))
            key = group_key(best["relpath"])
            for t in tracks:
                if group_key(t["relpath"]) == key:
                    say(f"[split] moved {t['relpath']} {t['split']} -> {name} (at least {MIN_PER_SPLIT} each)")
                    t["split"] = name


def bandwidth_hz(path: str, duration: float) -> float:
    """Rough upper edge of the content: highest frequency within 70 dB of the 200 Hz-2 kHz peak level
    (Welch PSD over up to 60 s from the middle of the track)."""
    start = max(0.0, duration / 2 - 30.0)
    audio, rate = read_audio(path, sample_rate=None, start=start, duration=min(60.0, duration))
    freqs, psd = scipy.signal.welch(audio.mean(axis=0), rate, nperseg=4096)
    level = 10 * np.log10(psd + 1e-20)
    ref = level[(freqs > 200) & (freqs < 2000)].max()
    above = np.nonzero(level > ref - 70.0)[0]
    return float(freqs[above.max()]) if above.size else 0.0


WIDE_BANDWIDTH_HZ = 17000.0


def write_manifests(data: Path, tracks: list[dict], licences: dict[str, str]) -> None:
    names = [name for name, _ in SPLIT_BOUNDS] + ["heldout"]
    splits = {name: sorted(t["path"] for t in tracks if t["split"] == name) for name in names}
    _write_text(data / "splits.json", json.dumps(splits, indent=2) + "\n")
    # the 4th column: each track's true rate (main); training never asks for, nor is scored on, the band
    # above it (TrainConfig data.apply_sr_loss_mask)
    rows = [(t["split"], t["path"], f"{t['duration']:.3f}", str(int(t["true_sr"])))
            for t in tracks if t["split"] != "heldout"]
    order = {name: i for i, name in enumerate(names)}
    rows.sort(key=lambda r: (order[r[0]], r[1]))
    _write_csv(data / "music.csv", rows, TRUE_RATE_HEADER)
    # The bundled model's training data (configs/bundled.yaml): only the tracks whose own bandwidth reaches
    # WIDE_BANDWIDTH_HZ, so that lossy sources cut at 13-16 kHz do not teach that the top octave is empty
    # (benchmarks/README.md; scripts/filter_manifest.py writes the same for other limits).
    bandwidth = {t["path"]: t.get("bandwidth_hz", 0.0) for t in tracks}
    wide = [r for r in rows if bandwidth[r[1]] >= WIDE_BANDWIDTH_HZ]
    _write_csv(data / "music_wide.csv", wide, TRUE_RATE_HEADER)
    # The held-out packages get a manifest of their own (split column "test"), never mixed into music.csv.
    held = sorted(("test", t["path"], f"{t['duration']:.3f}") for t in tracks if t["split"] == "heldout")
    _write_csv(data / "heldout.csv", held)
    details = [
        {k: v for k, v in t.items() if k != "hash"}
        | {"licence": t.get("licence") or licences.get(t["package"], "user-supplied (not checked)")}
        for t in tracks
    ]
    _write_text(data / "tracks.json", json.dumps(details, indent=2) + "\n")
    say(f"[manifest] wrote {data / 'splits.json'}, {data / 'music.csv'} ({len(rows)} rows; "
        f"{len(wide)} in music_wide.csv), "
        f"{data / 'heldout.csv'} ({len(held)} rows), {data / 'tracks.json'}")


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


HEADER = ("split", "file_path", "duration")
TRUE_RATE_HEADER = (*HEADER, "estimated_true_sr")


def _write_csv(path: Path, rows: list[tuple], header: tuple = HEADER) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    os.replace(tmp, path)


# -------------------------------------------------------------------------------------------- 4: gpu pack


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")


def load_mono(path: str, start: float = 0.0, duration: float | None = None) -> np.ndarray:
    audio, _ = read_audio(path, SAMPLE_RATE, start=start, duration=duration)
    return audio.mean(axis=0).astype(np.float32)


def write_vorbis(path: Path, mono: np.ndarray, level: float) -> None:
    tmp = path.with_name(f".{path.stem}.tmp.ogg")
    with sf.SoundFile(str(tmp), "w", SAMPLE_RATE, 1, format="OGG", subtype="VORBIS", compression_level=level) as out:
        for i in range(0, len(mono), WRITE_BLOCK):
            out.write(mono[i : i + WRITE_BLOCK])
    os.replace(tmp, path)


def band_loss_db(reference: np.ndarray, decoded: np.ndarray, bands: list[tuple[float, float]]) -> list[float]:
    """Level of `decoded` relative to `reference` in each band (dB); NaN where the reference is empty."""
    n = min(len(reference), len(decoded))
    f, p_ref = scipy.signal.welch(reference[:n], SAMPLE_RATE, nperseg=4096)
    _, p_dec = scipy.signal.welch(decoded[:n], SAMPLE_RATE, nperseg=4096)
    top = p_ref[(f > 200) & (f < 2000)].max()
    out = []
    for lo, hi in bands:
        sel = (f >= lo) & (f < hi)
        ref = p_ref[sel].mean()
        out.append(float(10 * np.log10(p_dec[sel].mean() / ref)) if ref > top * 1e-8 else float("nan"))
    return out


CHECK_BANDS = [(8e3, 12e3), (12e3, 16e3), (16e3, 18e3), (18e3, 20e3)]


def check_codec(data: Path, level: float) -> None:
    """FFT check that Vorbis at `level` keeps the top of the band: white noise through the codec."""
    noise = (np.random.default_rng(0).standard_normal(10 * SAMPLE_RATE) * 0.1).astype(np.float32)
    probe = data / ".codec_probe.ogg"
    write_vorbis(probe, noise, level)
    decoded, _ = sf.read(str(probe), dtype="float32")
    probe.unlink()
    losses = band_loss_db(noise, decoded, CHECK_BANDS)
    text = ", ".join(f"{lo / 1e3:.0f}-{hi / 1e3:.0f} kHz {d:+.1f} dB" for (lo, hi), d in zip(CHECK_BANDS, losses))
    say(f"[pack] Vorbis level {level} on white noise: {text}")
    if losses[2] < -3.0:
        sys.exit("Vorbis lowpasses below 18 kHz at this level: use a lower --vorbis-level (or FLAC)")


def bytes_per_second(path: str, duration: float, level: float, scratch: Path) -> float:
    excerpt = min(30.0, duration)
    mono = load_mono(path, start=max(0.0, duration / 2 - excerpt / 2), duration=excerpt)
    write_vorbis(scratch, mono, level)
    rate = scratch.stat().st_size / (len(mono) / SAMPLE_RATE)
    scratch.unlink()
    return rate


def fit_cap(items: list[dict], budget: float) -> float:
    """Largest per-track length cap (s) so that the estimated pack size stays within `budget` bytes."""

    def size(cap: float) -> float:
        return sum(min(t["duration"], cap, t["max_s"]) * t["bps"] for t in items)

    if size(1e9) <= budget:
        return float("inf")
    lo, hi = 0.0, max(t["duration"] for t in items)
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if size(mid) <= budget else (lo, mid)
    return float(np.floor(lo / 10.0) * 10.0)


def build_pack(data: Path, tracks: list[dict], pack_mib: float, level: float) -> None:
    pack = data / "gpu_pack"
    pack.mkdir(parents=True, exist_ok=True)
    state_path = pack / ".state.json"
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    check_codec(data, level)
    chosen = [t for t in tracks if t["split"] in ("train", "validation")]
    items, used = [], set()
    for t in chosen:
        rel = f"{t['split']}/{safe_name(t['package'])}/{safe_name(Path(t['relpath']).stem)}.ogg"
        if rel in used:  # same file name in two sub-folders: tell them apart by a hash of the path
            rel = rel[:-4] + f"-{hashlib.sha256(t['relpath'].encode()).hexdigest()[:8]}.ogg"
        used.add(rel)
        key = f"{t['relpath']}|{level}"
        bps = state.get("bps", {}).get(key)
        if bps is None:
            bps = bytes_per_second(t["path"], t["duration"], level, pack / ".probe.ogg")
            state.setdefault("bps", {})[key] = bps
            _write_text(state_path, json.dumps(state, indent=1))
        max_s = VALIDATION_CAP_S if t["split"] == "validation" else float("inf")
        items.append({**t, "rel": rel, "bps": bps, "max_s": max_s})
    budget = pack_mib * 2**20 * 0.97 - 16384  # margin for the manifest and the estimate's error
    cap = fit_cap(items, budget)
    passes = 0
    while True:
        say(
            f"[pack] per-track cap: {'none' if cap == float('inf') else f'first {cap:.0f} s'}"
            f" (validation tracks: first {VALIDATION_CAP_S:.0f} s), Vorbis level {level}, mono 44.1 kHz"
        )
        rows = []
        for t in items:
            length = min(t["duration"], cap, t["max_s"])
            out = pack / t["rel"]
            out.parent.mkdir(parents=True, exist_ok=True)
            want = {"source": t["relpath"], "seconds": round(length, 3), "level": level}
            if out.exists() and state.get("files", {}).get(t["rel"]) == want:
                say(f"[pack] {t['rel']}: present, skipping")
            else:
                say(f"[pack] {t['rel']}: {length / 60:.1f} of {t['duration'] / 60:.1f} min")
                write_vorbis(out, load_mono(t["path"], duration=length), level)
                state.setdefault("files", {})[t["rel"]] = want
                _write_text(state_path, json.dumps(state, indent=1))
            rows.append((t["split"], t["rel"], f"{sf.info(str(out)).duration:.3f}"))
        keep = {t["rel"] for t in items}
        for stale in pack.rglob("*.ogg"):
            if stale.relative_to(pack).as_posix() not in keep:
                say(f"[pack] removing stale {stale.relative_to(pack)}")
                stale.unlink()
        _write_csv(pack / "train.csv", rows)
        total = sum(p.stat().st_size for p in pack.rglob("*") if p.is_file() and not p.name.startswith("."))
        if total > pack_mib * 2**20:
            cap = float(np.floor(min(cap, max(t["duration"] for t in items)) * 0.95 / 10.0) * 10.0)
            say(f"[pack] {total / 2**20:.1f} MiB is over {pack_mib} MiB: shrinking the cap to {cap:.0f} s")
            continue
        # The estimate came from the middle of each track; refit with the rates the files really have.
        for t in items:
            out = pack / t["rel"]
            t["bps"] = out.stat().st_size / max(sf.info(str(out)).duration, 1.0)
            state["bps"][f"{t['relpath']}|{level}"] = t["bps"]
        _write_text(state_path, json.dumps(state, indent=1))
        refit = fit_cap(items, budget)
        if refit < cap + 10.0 or passes >= 4:
            break
        say(
            f"[pack] {total / 2**20:.1f} MiB leaves room: the measured rates allow a cap of "
            f"{'none' if refit == float('inf') else f'{refit:.0f} s'}"
        )
        cap, passes = refit, passes + 1
    verify_pack(pack, items[: min(4, len(items))], level)
    minutes = {s: sum(float(r[2]) for r in rows if r[0] == s) / 60 for s in ("train", "validation")}
    trimmed = sum(1 for t in items if min(cap, t["max_s"]) < t["duration"])
    say(
        f"[pack] {pack}: {total / 2**20:.1f} MiB, train {minutes['train']:.1f} min, "
        f"validation {minutes['validation']:.1f} min, {trimmed} of {len(items)} tracks trimmed"
    )
    state["summary"] = {
        "mib": round(total / 2**20, 2),
        "cap_s": None if cap == float("inf") else cap,
        "minutes": {k: round(v, 2) for k, v in minutes.items()},
        "trimmed": trimmed,
    }
    _write_text(state_path, json.dumps(state, indent=1))


def verify_pack(pack: Path, sample: list[dict], level: float) -> None:
    """Compare a packed file's spectrum with its source's over the same excerpt."""
    for t in sample:
        decoded, _ = sf.read(str(pack / t["rel"]), dtype="float32", frames=60 * SAMPLE_RATE)
        reference = load_mono(t["path"], duration=len(decoded) / SAMPLE_RATE)
        losses = band_loss_db(reference, decoded, CHECK_BANDS)
        text = ", ".join(
            f"{lo / 1e3:.0f}-{hi / 1e3:.0f} kHz " + ("(empty)" if np.isnan(d) else f"{d:+.1f} dB")
            for (lo, hi), d in zip(CHECK_BANDS, losses)
        )
        say(f"[pack] check {t['rel']}: {text}")


# ------------------------------------------------------------------------------------- 5: rendered (opt.)

# Recipe of the rendered set. Piece i is composed from seed RENDERED_SEED + i in the style
# RENDERED_STYLES[i % 5] (2 of every 5 rock: 40 %) and written as <version>-<i>-<style>.flac; bump the
# version whenever the composer or the renderer changes what a seed gives, so old and new renders never
# share a name. (v1, the first recipe, wrote pieceNNN.flac with seeds 1000 + i and no rock style.)
RENDERED_VERSION = "v2"
RENDERED_SEED = 20000
RENDERED_STYLES = ("mixed", "rock", "mixed", "rock", "mixed")
RENDERED_TRIM_DB = -60.0  # the reverb tail is cut where it stays below -60 dBFS
DRUM_GROUPS = {  # GM percussion keys by part, for the printed summary
    "kick": (35, 36), "snare": (37, 38, 39, 40), "hi-hat": (42, 44, 46), "crash": (49, 57),
    "ride": (51, 53, 59), "china/splash": (52, 55), "toms": (41, 43, 45, 47, 48, 50),
}  # fmt: skip


def rendered_piece(i: int) -> tuple[str, int, str]:
    """(name, seed, style) of rendered piece i."""
    style = RENDERED_STYLES[i % len(RENDERED_STYLES)]
    return f"{RENDERED_VERSION}-{i:03d}-{style}", RENDERED_SEED + i, style


def high_band_db(path: Path) -> dict[str, float]:
    """Power above 8 kHz and above 16 kHz relative to the whole file's power (dB, mid channel)."""
    audio, rate = read_audio(path, sample_rate=None)
    freqs, psd = scipy.signal.welch(audio.mean(axis=0), rate, nperseg=4096)
    total = psd.sum() + 1e-30
    return {
        "above_8k_db": round(float(10 * np.log10(psd[freqs >= 8000].sum() / total + 1e-30)), 1),
        "above_16k_db": round(float(10 * np.log10(psd[freqs >= 16000].sum() / total + 1e-30)), 1),
    }


def build_rendered(data: Path, pieces: int, seconds: float) -> list[dict]:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from make_example import (  # our own composer + renderer
        compose_styled_piece,
        describe_midi,
        instrument_names,
        render_with_fluidsynth,
    )

    sf2 = next((data / "pkgs" / "fluid-soundfont-gm").rglob("FluidR3_GM.sf2"), None)
    if sf2 is None:
        sys.exit("FluidR3_GM.sf2 not found: the fluid-soundfont-gm package did not extract")
    out = data / "rendered"
    out.mkdir(parents=True, exist_ok=True)
    details_path = out / "rendered.json"
    known = {d["name"]: d for d in json.loads(details_path.read_text())} if details_path.exists() else {}
    wanted = [rendered_piece(i) for i in range(pieces)]
    names = {name for name, _, _ in wanted}
    others = sorted(p.name for p in out.glob("*.flac") if p.stem not in names)
    if others:
        say(
            f"[render] {len(others)} FLAC files in {out} are not pieces 0-{pieces - 1} of recipe "
            f"{RENDERED_VERSION} ({', '.join(others[:3])}{', ...' if len(others) > 3 else ''}): left out of "
            "rendered.csv; delete them if they are from an earlier recipe"
        )
    rows, details = [], []
    for name, seed, style in wanted:
        flac = out / f"{name}.flac"
        midi_bytes = compose_styled_piece(style, seed, seconds)
        digest = hashlib.sha256(midi_bytes + f"|{seconds}|{RENDERED_TRIM_DB}".encode()).hexdigest()
        if flac.exists() and known.get(name, {}).get("midi_sha256") == digest:
            say(f"[render] {flac.name}: present, skipping")
            elapsed = known[name].get("render_s")
        else:
            why = "composer output changed, re-" if flac.exists() else ""
            say(f"[render] {flac.name}: {why}rendering ({style}, seed {seed}) with FluidSynth")
            midi = out / f".{name}.mid"
            midi.write_bytes(midi_bytes)
            started = time.monotonic()
            render_with_fluidsynth(midi, flac, sf2, trim_below_db=RENDERED_TRIM_DB)
            elapsed = round(time.monotonic() - started, 1)
            midi.unlink()
        info = describe_midi(midi_bytes)
        drums = [g for g, keys in DRUM_GROUPS.items() if set(keys) & set(info["drum_keys"])]
        split = split_of(unit_hash(f"rendered/{name}"))
        duration = sf.info(str(flac)).duration
        piece = {
            "name": name,
            "path": str(flac.resolve()),
            "split": split,
            "style": style,
            "seed": seed,
            "bpm": round(info["bpm"]),
            "duration": round(duration, 3),
            "instruments": instrument_names(info),
            "programs": {str(ch): p for ch, p in sorted(info["programs"].items()) if info["notes"].get(ch)},
            "drums": drums,
            **high_band_db(flac),
            "bandwidth_hz": round(bandwidth_hz(str(flac), duration)),
            "midi_sha256": digest,
            "render_s": elapsed,
        }
        say(
            f"[render]   {split:10s} {style:5s} {piece['bpm']:3d} BPM {duration:5.1f} s  "
            f"{'; '.join(piece['instruments'])}" + (f" ({', '.join(drums)})" if drums else " (no drums)")
            + f"  >8 kHz {piece['above_8k_db']:+.1f} dB, >16 kHz {piece['above_16k_db']:+.1f} dB"
        )
        details.append(piece)
        known[name] = piece  # written as it goes, so an interrupted run keeps what it rendered
        _write_text(details_path, json.dumps(list(known.values()), indent=1) + "\n")
        rows.append({"split": split, "path": piece["path"], "duration": duration})
    _write_csv(out / "rendered.csv", [(r["split"], r["path"], f"{r['duration']:.3f}") for r in rows])
    _write_text(details_path, json.dumps(details, indent=1) + "\n")
    summarise_rendered(details)
    return rows


def summarise_rendered(details: list[dict]) -> None:
    for style in sorted({d["style"] for d in details}):
        chosen = [d for d in details if d["style"] == style]
        say(
            f"[render] {style}: {len(chosen)} pieces, {sum(d['duration'] for d in chosen) / 60:.1f} min, "
            f"{sum(bool(d['drums']) for d in chosen)} with drums; median power above 8 kHz "
            f"{np.median([d['above_8k_db'] for d in chosen]):+.1f} dB, above 16 kHz "
            f"{np.median([d['above_16k_db'] for d in chosen]):+.1f} dB (of the total)"
        )
    say(f"[render] {sum(bool(d['drums']) for d in details)} of {len(details)} pieces have drums")


def previous_rendered(data: Path) -> list[dict]:
    """Rows of an earlier --rendered run (for the summary)."""
    manifest = data / "rendered" / "rendered.csv"
    if not manifest.exists():
        return []
    with open(manifest, newline="") as f:
        rows = [
            {
                "split": r["split"],
                "path": r["file_path"],
                "duration": float(r["duration"]),
            }
            for r in csv.DictReader(f)
        ]
    rows = [r for r in rows if Path(r["path"]).exists()]
    say(f"[render] {len(rows)} rendered pieces listed in {manifest}")
    return rows


# -------------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", type=Path, default=ROOT / "data", help="where everything goes (default: data/)")
    ap.add_argument("--pack-mib", type=float, default=45.0, help="size limit of data/gpu_pack in MiB")
    ap.add_argument(
        "--vorbis-level",
        type=float,
        default=VORBIS_LEVEL,
        help="libsndfile Vorbis compression level for the pack (0 best .. 1 smallest)",
    )
    ap.add_argument("--no-pack", action="store_true", help="skip building data/gpu_pack")
    ap.add_argument(
        "--extra-dir",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="also use the audio files under DIR (any depth); repeatable. You answer for their licence",
    )
    ap.add_argument(
        "--rendered",
        type=int,
        default=0,
        metavar="N",
        help="also render N pieces of our own music (40 %% rock) with FluidSynth (needs fluidsynth)",
    )
    ap.add_argument("--rendered-seconds", type=float, default=60.0, help="length of each rendered piece")
    args = ap.parse_args(argv)
    data = args.data_dir.resolve()
    data.mkdir(parents=True, exist_ok=True)
    say(f"data folder: {data}")

    extract(data, download(data))
    licences = write_licences(data)
    tracks = collect_tracks(data, args.extra_dir)
    assign_splits(tracks)
    for t in tracks:
        t["bandwidth_hz"] = round(bandwidth_hz(t["path"], t["duration"]))
        # the true rate (2 × the edge a lossy coder left, or the rate when full band) of the tracks that
        # can be trained on: without it a track cut at 17-19 kHz teaches that the top of the band is empty
        # (docs/experiments.md, 2026-12-05)
        if t["split"] != "heldout":
            t["true_sr"] = estimate_true_sr(t["path"])
    extra = build_rendered(data, args.rendered, args.rendered_seconds) if args.rendered else previous_rendered(data)
    write_manifests(data, tracks, licences)
    for name in [n for n, _ in SPLIT_BOUNDS] + ["heldout"]:
        chosen = [t for t in tracks if t["split"] == name]
        rendered = [r for r in extra if r["split"] == name]
        say(
            f"[split] {name:10s} {len(chosen):3d} tracks {sum(t['duration'] for t in chosen) / 60:7.1f} min"
            + (
                f"  + {len(rendered)} rendered pieces {sum(r['duration'] for r in rendered) / 60:.1f} min"
                if extra
                else ""
            )
        )
    if not args.no_pack:
        build_pack(data, tracks, args.pack_mib, args.vorbis_level)
    say("done")


if __name__ == "__main__":
    main()
