import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(min(2, torch.get_num_threads()))

REFERENCE_CANDIDATES = [
    Path(os.environ.get("A2SB_REFERENCE", "/nonexistent")),
    Path(__file__).resolve().parents[2] / "shared" / "reference",
    Path(__file__).resolve().parents[1] / "shared" / "reference",
]


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """The published reference material (shared/reference beside the checkout). CI must have it."""
    for cand in REFERENCE_CANDIDATES:
        if (cand / "official_vectors.safetensors").exists():
            return cand
    if os.environ.get("CI"):
        pytest.fail("shared/reference not found beside the checkout")
    pytest.skip("shared/reference not found (set A2SB_REFERENCE)")


@pytest.fixture(scope="session")
def official(reference_dir):
    from safetensors import safe_open

    return safe_open(str(reference_dir / "official_vectors.safetensors"), "pt")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny random model saved as a model folder (2 steps, 32-frame windows): for CLI and bench tests."""
    import torch

    from a2sb.model import A2SBModel, save_model
    from a2sb.network import preset

    torch.manual_seed(0)
    model = A2SBModel(preset("tiny"), t_cutoffs=[0.5], default_steps=2, default_window=32, default_hop=16)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    folder = tmp_path_factory.mktemp("model") / "tiny"
    save_model(model, folder)
    return folder
