"""a2sb: restore damaged music (bandwidth extension, inpainting) with Audio-to-Audio Schrödinger Bridges.

    from a2sb import Restorer
    report = Restorer().restore_file("song.mp3")

Names are loaded on first use, so that `import a2sb` (and `a2sb --help`) does not import torch.
"""

from importlib import import_module

from .errors import A2SBError

__version__ = "0.1.0"
_LAZY = {
    "Restorer": "restorer", "Report": "restorer", "Cancelled": "restorer", "A2SBWarning": "restorer",
    "restore": "restorer", "Plan": "plan", "A2SBModel": "model", "load_model": "model", "save_model": "model",
    "to_representation": "representation", "from_representation": "representation",
}
__all__ = ["A2SBError", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'a2sb' has no attribute '{name}'")
