"""Every ```python block of README.md runs as written (in order, sharing one namespace, in a scratch
folder that sees the repository's examples/)."""

import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", (ROOT / "README.md").read_text(), flags=re.S | re.M)


def test_readme_python_examples_run(tmp_path, monkeypatch, capsys):
    blocks = python_blocks()
    assert len(blocks) >= 3
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for number, block in enumerate(blocks, 1):
        exec(compile(block, f"README.md python block {number}", "exec"), namespace)
    out = capsys.readouterr().out
    assert "lowpass at" in out and "wrote excerpt.restored.flac" in out
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix in (".flac", ".wav")) == [
        "edited.wav", "excerpt.flac", "excerpt.restored.flac", "restored.wav"]
    assert os.path.getsize(tmp_path / "restored.wav") > 0
