import builtins
import collections
import json
import os
import pathlib
import zipfile

import pytest
import torch

from a2sb import checkpoint
from a2sb.checkpoint import (
    check_state_dict,
    load_bundle,
    read_lightning_state_dict,
    save_bundle,
    split_network_state,
)
from a2sb.errors import A2SBError


class LightningHyperParams:
    """Stands for what Lightning pickles in `hyper_parameters`: a class weights_only refuses."""

    def __init__(self):
        self.lr = 1e-4
        self.path = pathlib.PurePosixPath("/data/train")


class AttributeDict(dict):
    """Like Lightning's AttributeDict: a dict subclass (rebuilt by pickle through SETITEMS)."""


class Hostile:
    """Unpickling this runs `fn(*args)`, if the loader is unsafe."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def hostile_objects(marker: pathlib.Path) -> list[Hostile]:
    return [
        Hostile(os.system, f"touch {marker}"),
        Hostile(builtins.exec, f"open({str(marker)!r}, 'w').write('x')"),
        Hostile(pathlib.Path.write_text, pathlib.Path(marker), "x"),  # pickled via getattr(Path, ...)
    ]


def reference_state() -> collections.OrderedDict:
    g = torch.Generator().manual_seed(0)
    base = torch.randn(4, 6, generator=g)
    state = collections.OrderedDict()
    state["vf_model.input_projection.weight"] = torch.randn(8, 3, 3, 3, generator=g)
    state["vf_model.input_projection.bias"] = torch.nn.Parameter(torch.randn(8, generator=g))
    state["vf_model.base"] = base
    state["vf_model.base_t"] = base.t()  # strided view of the same storage
    state["vf_model.base_row"] = base[2]  # view with a storage offset
    state["vf_model.half"] = torch.randn(5, generator=g).half()
    state["vf_model.steps"] = torch.arange(7)
    state["vf_model.empty"] = torch.zeros(0, 3)
    state["t_to_emb.multipliers"] = torch.randn(1, 64, generator=g)
    return state


def lightning_ckpt(path, state, legacy=False, **extra):
    ckpt = {
        "epoch": 3,
        "global_step": 1200,
        "pytorch-lightning_version": "2.1.0",
        "state_dict": state,
        "hyper_parameters": AttributeDict(config=LightningHyperParams(), ckpt_dir=pathlib.Path("/x")),
        # moment tensors that are never needed; they must not disturb the reader
        "optimizer_states": [{"state": {0: {"exp_avg": torch.ones(3)}}}],
        **extra,
    }
    torch.save(ckpt, path, _use_new_zipfile_serialization=not legacy)
    return path


def assert_same(loaded: dict, expected: dict):
    assert list(loaded) == list(expected)
    for key, ref in expected.items():
        got = loaded[key]
        assert type(got) is torch.Tensor and not got.requires_grad, key
        assert got.dtype == ref.dtype and got.shape == ref.shape, key
        assert torch.equal(got, ref.detach()), key
        if ref.numel():
            assert got.stride() == ref.stride() and got.storage_offset() == ref.storage_offset(), key


@pytest.fixture(params=["torch-first", "restricted-only"])
def reader_mode(request, monkeypatch):
    # "restricted-only" is what happens on torch < 2.10, where weights_only is not trusted
    if request.param == "restricted-only":
        monkeypatch.setattr(checkpoint, "_TORCH_LOAD_IS_SAFE", False)
    return request.param


# ---------------------------------------------------------------------------------- Lightning files

@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_lightning_ckpt_with_foreign_objects_loads_exact_tensors(tmp_path, reader_mode, legacy):
    state = reference_state()
    path = lightning_ckpt(tmp_path / "a.ckpt", state, legacy=legacy)
    with pytest.raises(Exception, match="(?i)weights.only"):  # so the fallback is really exercised
        torch.load(path, weights_only=True)

    loaded = read_lightning_state_dict(path)

    assert_same(loaded, state)
    # the view and the transposed view still share the base tensor's storage
    ptr = loaded["vf_model.base"].untyped_storage().data_ptr()
    assert loaded["vf_model.base_t"].untyped_storage().data_ptr() == ptr
    assert loaded["vf_model.base_row"].untyped_storage().data_ptr() == ptr
    assert loaded["vf_model.base_t"].stride() == (1, 6)


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_bare_state_dict_and_clean_ckpt(tmp_path, reader_mode, legacy):
    state = reference_state()
    bare = tmp_path / "bare.pt"
    torch.save(state, bare, _use_new_zipfile_serialization=not legacy)
    assert_same(read_lightning_state_dict(bare), state)

    clean = tmp_path / "clean.ckpt"
    torch.save({"epoch": 1, "state_dict": state}, clean, _use_new_zipfile_serialization=not legacy)
    assert_same(read_lightning_state_dict(clean), state)


def test_state_dict_of_a_foreign_dict_subclass(tmp_path, reader_mode):
    state = reference_state()
    path = tmp_path / "a.ckpt"
    torch.save({"state_dict": AttributeDict(state)}, path)
    assert_same(read_lightning_state_dict(path), state)


def test_big_endian_archive(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoint, "_TORCH_LOAD_IS_SAFE", False)
    state = {"w": torch.tensor([1.5, -2.0, 3.25]), "i": torch.tensor([1, 256], dtype=torch.int16)}
    src = tmp_path / "le.pt"
    torch.save(state, src)
    dst = tmp_path / "be.pt"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.endswith("/byteorder"):
                data = b"big"
            elif "/data/" in info.filename:  # storage 0 is float32, 1 is int16
                width = 4 if info.filename.endswith("/0") else 2
                data = torch.frombuffer(bytearray(data), dtype=torch.uint8).view(-1, width).flip(1)
                data = data.numpy().tobytes()
            zout.writestr(info.filename, data)
    loaded = read_lightning_state_dict(dst)
    assert torch.equal(loaded["w"], state["w"]) and torch.equal(loaded["i"], state["i"])


# ---------------------------------------------------------------------------------- hostile files

@pytest.mark.parametrize("which", [0, 1, 2], ids=["os.system", "exec", "Path.write_text"])
def test_hostile_objects_do_run_when_unpickled_unsafely(tmp_path, which):
    # control: the payloads below are real (a touch in tmp_path), so the tests after this one mean something
    marker = tmp_path / "MARKER"
    torch.save({"x": hostile_objects(marker)[which]}, tmp_path / "evil.pt")
    torch.load(tmp_path / "evil.pt", weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("which", [0, 1, 2], ids=["os.system", "exec", "Path.write_text"])
def test_hostile_object_outside_state_dict_is_inert(tmp_path, reader_mode, legacy, which):
    marker = tmp_path / "MARKER"
    state = reference_state()
    hostile = hostile_objects(marker)[which]
    path = lightning_ckpt(tmp_path / "evil.ckpt", state, legacy=legacy, callbacks={"cb": hostile},
                          loops=[hostile])

    loaded = read_lightning_state_dict(path)

    assert not marker.exists()
    assert_same(loaded, state)


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("which", [0, 1, 2], ids=["os.system", "exec", "Path.write_text"])
def test_hostile_object_inside_state_dict_is_refused(tmp_path, reader_mode, legacy, which):
    marker = tmp_path / "MARKER"
    state = reference_state()
    state["vf_model.evil"] = hostile_objects(marker)[which]
    path = lightning_ckpt(tmp_path / "evil.ckpt", state, legacy=legacy)

    with pytest.raises(A2SBError, match="vf_model.evil.*not a tensor"):
        read_lightning_state_dict(path)
    assert not marker.exists()


def test_hostile_top_level_object_is_not_run(tmp_path, reader_mode):
    marker = tmp_path / "MARKER"
    torch.save(hostile_objects(marker)[0], tmp_path / "evil.pt")
    with pytest.raises(A2SBError, match="no state_dict.*untrusted object"):
        read_lightning_state_dict(tmp_path / "evil.pt")
    assert not marker.exists()


class OversizedView:
    """A tensor record claiming 1000 elements of a 4-element storage."""

    def __reduce__(self):
        storage = torch.storage.TypedStorage(wrap_storage=torch.ones(4).untyped_storage(),
                                             dtype=torch.float32, _internal=True)
        return torch._utils._rebuild_tensor_v2, (storage, 0, (1000,), (1,), False, collections.OrderedDict())


def test_tensor_larger_than_its_storage_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoint, "_TORCH_LOAD_IS_SAFE", False)
    path = tmp_path / "big.ckpt"
    torch.save({"state_dict": {"w": OversizedView()}, "hyper_parameters": LightningHyperParams()}, path)
    with pytest.raises(A2SBError, match="truncated or corrupt"):
        read_lightning_state_dict(path)


# ---------------------------------------------------------------------------------- broken files

@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("keep", [0.3, 0.9])
def test_truncated_ckpt(tmp_path, reader_mode, legacy, keep):
    path = lightning_ckpt(tmp_path / "a.ckpt", reference_state(), legacy=legacy)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(A2SBError, match="truncated or corrupt"):
        read_lightning_state_dict(path)


@pytest.mark.parametrize("content", [b"", b"hello\n", bytes(range(256)) * 4, b"PK\x03\x04junk",
                                     b"\x80\x02K\x07."])  # the last: a pickle of the int 7
def test_not_a_checkpoint(tmp_path, reader_mode, content):
    path = tmp_path / "x.ckpt"
    path.write_bytes(content)
    with pytest.raises(A2SBError, match="truncated or corrupt"):
        read_lightning_state_dict(path)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(A2SBError, match="not found"):
        read_lightning_state_dict(tmp_path / "nope.ckpt")
    with pytest.raises(A2SBError, match="not a file"):
        read_lightning_state_dict(tmp_path)


def test_no_state_dict(tmp_path, reader_mode):
    path = tmp_path / "x.ckpt"
    torch.save({"epoch": 3, "hyper_parameters": LightningHyperParams()}, path)
    with pytest.raises(A2SBError, match="no state_dict.*'epoch', 'hyper_parameters'"):
        read_lightning_state_dict(path)


# ---------------------------------------------------------------------------------- state-dict helpers

def test_split_network_state():
    state = reference_state()
    net, mult = split_network_state(state)
    assert list(net) == [k[len("vf_model."):] for k in state if k.startswith("vf_model.")]
    assert net["input_projection.weight"] is state["vf_model.input_projection.weight"]
    assert mult is state["t_to_emb.multipliers"]

    bare = {"input_projection.weight": torch.ones(1), "output_projection.2.bias": torch.ones(1)}
    net, mult = split_network_state(bare)
    assert net == bare and mult is None

    with pytest.raises(A2SBError, match="no network weights"):
        split_network_state({"t_to_emb.multipliers": torch.ones(1, 64), "other.weight": torch.ones(1)})


def test_check_state_dict_messages():
    expected = {f"k{i}": (2, 3) for i in range(8)}
    check_state_dict(expected, {k: torch.zeros(s) for k, s in expected.items()}, "ok.ckpt")  # no error

    state = {"k0": torch.zeros(3, 2), "k1": torch.zeros(2, 3), "extra.a": torch.zeros(1), "extra.b": 5}
    with pytest.raises(A2SBError) as err:
        check_state_dict(expected, state, "bad.ckpt")
    msg = str(err.value)
    assert msg.startswith("bad.ckpt: ")
    assert "6 missing key(s): k2, k3, k4, k5, k6, ... (+1 more)" in msg
    assert "2 unexpected key(s): extra.a, extra.b" in msg
    assert "1 shape mismatch(es): k0: expected (2, 3) got (3, 2)" in msg
    assert "k7" not in msg  # at most five of each are named

    with pytest.raises(A2SBError, match=r"1 shape mismatch\(es\): f: expected \(16,\) got \(\)$"):
        check_state_dict({"f": (16,)}, {"f": torch.tensor(1.0)}, "x")


# ---------------------------------------------------------------------------------- model folders

def expert_states():
    g = torch.Generator().manual_seed(1)
    shared = torch.randn(3, 4, generator=g)
    a = {"conv.weight": torch.randn(2, 3, 3, 3, generator=g), "tied.a": shared, "tied.b": shared[1],
         "pos_emb.freqs": torch.linspace(1, 32, 16) * torch.pi, "half": torch.randn(4, generator=g).half()}
    b = {k: v * 2 for k, v in a.items()}
    b["strided"] = torch.randn(4, 3, generator=g).t()
    return [a, b]


CONFIG = {"format_version": 1, "architecture": {"channels": [8, 16]}, "t_cutoffs": [0.5],
          "stft": {"n_fft": 2048}, "provenance": {"source": "test"}}


def test_bundle_round_trip(tmp_path):
    states = expert_states()
    save_bundle(tmp_path / "m", states, CONFIG)
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors"]
    text = (tmp_path / "m" / "config.json").read_text()
    assert text.startswith("{\n  ") and json.loads(text) == CONFIG

    for source in (tmp_path / "m", tmp_path / "m" / "model.safetensors", str(tmp_path / "m")):
        loaded, config = load_bundle(source)
        assert config == CONFIG and len(loaded) == 2
        for got, ref in zip(loaded, states):
            assert sorted(got) == sorted(ref)
            for k in ref:
                assert got[k].dtype == ref[k].dtype and torch.equal(got[k], ref[k]), k

    # overwriting an existing folder replaces both files
    save_bundle(tmp_path / "m", states[:1], {**CONFIG, "t_cutoffs": []})
    loaded, config = load_bundle(tmp_path / "m")
    assert len(loaded) == 1 and config["t_cutoffs"] == []
    assert not [p for p in (tmp_path / "m").iterdir() if p.name.endswith(".tmp")]


def test_save_bundle_checks_before_writing(tmp_path):
    with pytest.raises(A2SBError, match="2 expert.*needs 3"):
        save_bundle(tmp_path / "m", expert_states(), {**CONFIG, "t_cutoffs": [0.3, 0.6]})
    with pytest.raises(A2SBError, match="increase strictly"):
        save_bundle(tmp_path / "m", expert_states(), {**CONFIG, "t_cutoffs": [1.5]})
    with pytest.raises(TypeError):
        save_bundle(tmp_path / "m", expert_states(), {**CONFIG, "bad": object()})
    assert not (tmp_path / "m").exists() or not any((tmp_path / "m").iterdir())


def test_load_bundle_errors(tmp_path):
    with pytest.raises(A2SBError, match="not found"):
        load_bundle(tmp_path / "missing")

    folder = tmp_path / "m"
    save_bundle(folder, expert_states(), CONFIG)
    weights, config = folder / "model.safetensors", folder / "config.json"

    config.write_text('{"t_cutoffs": [0.5],}')
    with pytest.raises(A2SBError, match=r"config.json: invalid JSON \(line 1, column"):
        load_bundle(folder)

    config.write_text(json.dumps({**CONFIG, "t_cutoffs": [0.25, 0.5]}))
    with pytest.raises(A2SBError, match="2 expert.*needs 3"):
        load_bundle(folder)

    config.write_text(json.dumps(CONFIG))
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) - 100])
    with pytest.raises(A2SBError, match="truncated or corrupt"):
        load_bundle(folder)
    weights.write_bytes(data[:5])
    with pytest.raises(A2SBError, match="truncated or corrupt"):
        load_bundle(weights)

    weights.unlink()
    with pytest.raises(A2SBError, match="no model.safetensors"):
        load_bundle(folder)
    weights.write_bytes(data)
    config.unlink()
    with pytest.raises(A2SBError, match="no config.json"):
        load_bundle(weights)


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_saved_model_folder_follows_the_umask(tmp_path, umask):
    # safetensors writes 0600 files; a model folder's files get the mode of any other new file
    old = os.umask(umask)
    try:
        checkpoint.save_bundle(tmp_path / "m", [{"w": torch.ones(3)}], {"experts": 1})
    finally:
        os.umask(old)
    for name in ("model.safetensors", "config.json"):
        assert (tmp_path / "m" / name).stat().st_mode & 0o777 == 0o666 & ~umask
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors"]
