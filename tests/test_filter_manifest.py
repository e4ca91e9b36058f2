"""scripts/filter_manifest.py: keep the manifest rows whose track reaches a bandwidth."""

import csv
import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "filter_manifest.py"


def _run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True)


def test_keeps_only_wide_tracks_and_refuses_bad_input(tmp_path):
    tracks = tmp_path / "tracks.json"
    tracks.write_text(json.dumps([{"path": "/a.ogg", "bandwidth_hz": 15300}, {"path": "/b.ogg", "bandwidth_hz": 17000},
                                  {"path": "/c.ogg", "bandwidth_hz": 20500}]))
    manifest = tmp_path / "music.csv"
    manifest.write_text("split,file_path,duration\ntrain,/a.ogg,60\ntrain,/b.ogg,120\ntrain,/c.ogg,30\n")
    out = tmp_path / "wide.csv"
    done = _run(manifest, out, "--min-bandwidth", 17000, "--tracks", tracks)
    assert done.returncode == 0, done.stderr
    assert [r["file_path"] for r in csv.DictReader(out.open())] == ["/b.ogg", "/c.ogg"]
    assert "2 of 3 rows (2 min)" in done.stdout

    same = _run(manifest, manifest, "--tracks", tracks)
    assert same.returncode == 2 and "overwrite" in same.stderr and "Traceback" not in same.stderr
    assert manifest.read_text().count("\n") == 4  # untouched

    manifest.write_text("split,file_path,duration\ntrain,/missing.ogg,60\n")
    missing = _run(manifest, out, "--tracks", tracks)
    assert missing.returncode == 2 and "not in" in missing.stderr and "Traceback" not in missing.stderr
