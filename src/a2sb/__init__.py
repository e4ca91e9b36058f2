"""a2sb: restore damaged music (bandwidth extension, inpainting) with Audio-to-Audio Schrödinger Bridges."""

from .errors import A2SBError
from .model import A2SBModel, load_model, save_model
from .representation import from_representation, to_representation

__version__ = "0.1.0"
__all__ = ["A2SBError", "A2SBModel", "load_model", "save_model", "to_representation", "from_representation",
           "restore", "restore_audio"]


def __getattr__(name):
    # The pipeline pulls in more (detection, plotting); load it on first use.
    if name in ("restore", "restore_audio"):
        from . import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'a2sb' has no attribute '{name}'")
