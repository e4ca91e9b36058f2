"""Checkpoint files: NVIDIA's released PyTorch-Lightning `.ckpt` files (read only) and our model folders.

Security model
--------------
A `.ckpt` is a pickle, and unpickling an untrusted pickle normally lets the file call any importable
function (``os.system`` ...). We never do that:

1. On torch >= 2.10 we first try ``torch.load(weights_only=True)`` (older releases have published
   weights-only bypasses, CVE-2025-32434 and CVE-2026-24747, so there we skip straight to step 2).
2. If torch refuses the file (Lightning stores arbitrary objects in ``hyper_parameters``), our own
   unpickler reads it. Its ``find_class`` hands out only objects of this module: tensor "rebuild"
   functions that merely record their arguments, storage-type markers and ``OrderedDict``. Every other
   global the file names becomes an inert stand-in class that records its name and arguments and runs
   nothing, so the rest of the file can still be walked to find ``state_dict``.
3. Tensor bytes are read by us from the zip archive's ``data/`` records (or the legacy stream), only for
   tensors that are in ``state_dict``, with every offset/size/stride checked against the bytes present.
4. Every ``state_dict`` value must then be a real tensor; a stand-in there is an error, never called.

Our model folders hold ``model.safetensors`` (tensors ``expert{i}.<key>``) and ``config.json``: data
formats with no code in them.
"""

from __future__ import annotations

import _compat_pickle
import collections
import contextlib
import io
import json
import os
import pickle
import re
import struct
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

import torch

from .audio import temporary_beside
from .errors import A2SBError

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
NETWORK_PREFIX = "vf_model."
MULTIPLIERS_KEY = "t_to_emb.multipliers"

_CORRUPT = "not a PyTorch checkpoint, or the file is truncated or corrupt"
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch.serialization.MAGIC_NUMBER
_LEGACY_PROTOCOL = 1001


def _torch_load_is_safe() -> bool:
    m = re.match(r"(\d+)\.(\d+)", torch.__version__)
    return bool(m) and (int(m[1]), int(m[2])) >= (2, 10)


_TORCH_LOAD_IS_SAFE = _torch_load_is_safe()  # tests flip this to exercise our own reader


# ------------------------------------------------------------------------------ reading .ckpt files

def read_lightning_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The `state_dict` of a Lightning checkpoint (or the file itself if it is a bare state dict),
    loaded without executing pickled code (see the module docstring)."""
    path = Path(path)
    if not path.exists():
        raise A2SBError(f"checkpoint not found: {path}")
    if not path.is_file():
        raise A2SBError(f"checkpoint is not a file: {path}")
    is_zip = zipfile.is_zipfile(path)
    if _TORCH_LOAD_IS_SAFE:
        try:
            # mmap: optimizer states we do not need stay on disk instead of in memory
            root = torch.load(path, map_location="cpu", weights_only=True, mmap=is_zip)
        except Exception:
            pass  # foreign globals, or unreadable: our reader tells which, with a clear message
        else:
            return _tensors(_find_state_dict(root, path), path, None)
    try:
        with _RestrictedReader(path, is_zip) as reader:
            return _tensors(_find_state_dict(reader.root, path), path, reader.tensor)
    except A2SBError:
        raise
    except Exception as exc:
        detail = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]  # the CLI prints one line
        raise A2SBError(f"{path}: {_CORRUPT} ({detail})") from exc


def _mapping(obj) -> Mapping | None:
    if isinstance(obj, Mapping):
        return obj
    if isinstance(obj, _StandIn) and obj._items:  # a dict subclass we did not trust
        return obj._items
    return None


def _find_state_dict(root, path: Path) -> Mapping:
    top = _mapping(root)
    if top is None:
        raise A2SBError(f"{path}: no state_dict in the checkpoint (it holds {_describe(root)})")
    if "state_dict" in top:
        state = _mapping(top["state_dict"])
        if state is None:
            raise A2SBError(f"{path}: state_dict is {_describe(top['state_dict'])}, not a mapping")
        return state
    if top and all(isinstance(v, (torch.Tensor, _LazyTensor)) for v in top.values()):
        return top  # a bare state dict
    keys = ", ".join(repr(k) for k in list(top)[:8])
    raise A2SBError(f"{path}: no state_dict in the checkpoint (top-level entries: {keys or 'none'})")


def _tensors(state: Mapping, path: Path, build: Callable | None) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        if not isinstance(key, str):
            raise A2SBError(f"{path}: state_dict has a non-string key {_describe(key)}")
        if build is not None and isinstance(value, _LazyTensor):
            value = build(value)
        if not isinstance(value, torch.Tensor):
            raise A2SBError(f"{path}: state_dict entry '{key}' is {_describe(value)}, not a tensor; "
                            "refusing the file")
        out[key] = value.detach()
    return out


def _describe(obj) -> str:
    if isinstance(obj, _StandIn):
        return f"an untrusted object ({obj._a2sb_global}, not executed)"
    return f"a {type(obj).__name__}"


# ------------------------------------------------------------------------------ restricted unpickler
# The classes below are what the unpickler hands out. They refuse pickle's BUILD (__setstate__), so a
# file cannot overwrite their fields or attach attributes to them.

class _Sealed:
    __slots__ = ()

    def __setstate__(self, state):
        raise pickle.UnpicklingError("refusing to set state on a loader object")


class _StorageType(_Sealed):
    """Stands for torch.FloatStorage & co. in a storage record."""
    __slots__ = ("dtype",)

    def __init__(self, dtype):
        self.dtype = dtype


_STORAGE_DTYPES = {
    "DoubleStorage": torch.float64, "FloatStorage": torch.float32, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool, "ComplexFloatStorage": torch.complex64,
    "ComplexDoubleStorage": torch.complex128, "UntypedStorage": torch.uint8,
}
_STORAGE_MODULES = ("torch", "torch.cuda", "torch.storage")  # CUDA storages are read onto the CPU


class _StorageRef(_Sealed):
    """A storage record: `count` elements of `dtype` from element `offset` of record `key`
    (offset/count are only set by legacy storage views)."""
    __slots__ = ("key", "dtype", "offset", "count")

    def __init__(self, key, dtype, offset=0, count=None):
        self.key, self.dtype, self.offset, self.count = key, dtype, offset, count


class _LazyTensor(_Sealed):
    """A tensor as the pickle describes it; its bytes are read only if it is in state_dict."""
    __slots__ = ("storage", "offset", "size", "stride")

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride


class _Builder(_Sealed):
    __slots__ = ("fn",)

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, *args):
        return self.fn(*args)


def _rebuild_tensor(storage, storage_offset, size, stride, *_grad_hooks_metadata):
    return _LazyTensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, *_grad_hooks_state):
    return data  # the values are all we need; Parameter-ness does not matter in a state dict


_REBUILD_TENSOR = _Builder(_rebuild_tensor)
_REBUILD_PARAMETER = _Builder(_rebuild_parameter)


def _rebuild_from_type(func, new_type, args, state):
    # used for tensor subclasses: rebuild the plain tensor if the inner builder is one of ours
    if func in (_REBUILD_TENSOR, _REBUILD_PARAMETER) and isinstance(args, tuple):
        return func(*args)
    return _StandIn.make("torch._tensor", "_rebuild_from_type_v2")(func, new_type, args, state)


_BUILDERS = {
    ("torch._utils", "_rebuild_tensor_v2"): _REBUILD_TENSOR,
    ("torch._utils", "_rebuild_tensor"): _REBUILD_TENSOR,
    ("torch._utils", "_rebuild_parameter"): _REBUILD_PARAMETER,
    ("torch._utils", "_rebuild_parameter_with_state"): _REBUILD_PARAMETER,
    ("torch._tensor", "_rebuild_from_type_v2"): _Builder(_rebuild_from_type),
}


class _StandIn:
    """Inert stand-in for a global the file names (a class, `os.system`, ...). Calling it, or
    instantiating it, records the arguments and returns another stand-in; nothing else happens."""
    _a2sb_global = "?"

    def __new__(cls, *args, **kwargs):
        self = object.__new__(cls)
        self._args, self._kwargs, self._state, self._items, self._list = args, kwargs, None, {}, []
        return self

    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        return type(self)(*args, **kwargs)

    # what pickle's BUILD / SETITEMS / APPENDS use
    def __setstate__(self, state):
        self._state = state

    def __setitem__(self, key, value):
        self._items[key] = value

    def append(self, value):
        self._list.append(value)

    def extend(self, values):
        self._list.extend(values)

    def __repr__(self):
        return f"<untrusted {self._a2sb_global}>"

    @staticmethod
    def make(module: str, name: str) -> type:
        return type("StandIn", (_StandIn,), {"_a2sb_global": f"{module}.{name}"})


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, storage_dtypes: dict | None = None):
        super().__init__(file)
        self._storage_dtypes = storage_dtypes  # key -> dtype of every storage record seen; None: none allowed
        self._stand_ins: dict[tuple[str, str], type] = {}

    def find_class(self, module, name):
        # Python-2 era names, as the default find_class maps them for protocol < 3
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if (module, name) in _BUILDERS:
            return _BUILDERS[(module, name)]
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module in _STORAGE_MODULES and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        if (module, name) not in self._stand_ins:
            self._stand_ins[(module, name)] = _StandIn.make(module, name)
        return self._stand_ins[(module, name)]

    def persistent_load(self, pid):
        if self._storage_dtypes is None:
            raise pickle.UnpicklingError("unexpected persistent id")
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            return _StandIn.make("<persistent id>", str(pid[0] if isinstance(pid, tuple) and pid else "?"))()
        # zip: ('storage', type, key, location, numel); legacy adds view_metadata
        if len(pid) < 5 or not isinstance(pid[2], str):
            raise pickle.UnpicklingError("malformed storage record")
        key = pid[2]
        dtype = pid[1].dtype if isinstance(pid[1], _StorageType) else None
        self._storage_dtypes[key] = dtype
        view = pid[5] if len(pid) > 5 else None
        if view is None:
            return _StorageRef(key, dtype)
        if not (isinstance(view, tuple) and len(view) == 3 and _is_index(view[1]) and _is_index(view[2])):
            raise pickle.UnpicklingError("malformed storage view")
        return _StorageRef(key, dtype, view[1], view[2])


def _is_index(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def _load_plain(f):
    """A small header pickle (legacy format): no globals of interest, no storages."""
    return _Unpickler(f).load()


class _RestrictedReader:
    """Unpickles the file with `_Unpickler` (`.root`) and turns `_LazyTensor`s into tensors on request."""

    def __init__(self, path: Path, is_zip: bool):
        self._dtypes: dict[str, torch.dtype | None] = {}
        self._cache: dict[tuple[str, int], torch.Tensor] = {}
        self._file = open(path, "rb")
        try:
            if is_zip:
                self._open_zip()
            else:
                self._open_legacy()
        except BaseException:
            self._file.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._file.close()

    # -- zip archives (torch >= 1.6): <prefix>/data.pkl, <prefix>/data/<key>, <prefix>/byteorder
    def _open_zip(self):
        self._zip = zipfile.ZipFile(self._file)
        names = [n for n in self._zip.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(names) != 1:
            raise A2SBError(f"{self._file.name}: {_CORRUPT} (a zip archive without a torch data.pkl)")
        self._prefix = names[0][: -len("data.pkl")]
        order = self._prefix + "byteorder"
        self._big_endian = order in self._zip.namelist() and self._zip.read(order).strip() == b"big"
        pkl = self._zip.read(names[0])
        self.root = _Unpickler(io.BytesIO(pkl), self._dtypes).load()
        self._read = self._read_zip

    def _read_zip(self, key: str) -> torch.Tensor:
        try:
            info = self._zip.getinfo(f"{self._prefix}data/{key}")
        except KeyError:
            raise pickle.UnpicklingError(f"storage record data/{key} is missing") from None
        if info.file_size > os.fstat(self._file.fileno()).st_size:  # torch stores records uncompressed
            raise EOFError(f"storage record data/{key} claims more bytes than the file has")
        raw = torch.empty(info.file_size, dtype=torch.uint8)
        view, pos = memoryview(raw.numpy()), 0
        with self._zip.open(info) as f:  # chunked, so no second full-size copy is made
            while pos < info.file_size:
                chunk = f.read(min(1 << 24, info.file_size - pos))
                if not chunk:
                    raise EOFError(f"storage record data/{key} ends early")
                view[pos : pos + len(chunk)] = chunk
                pos += len(chunk)
        return raw

    # -- legacy stream (_use_new_zipfile_serialization=False): magic, protocol, sys_info, main pickle,
    #    storage keys, then per storage an int64 element count and the raw little-endian bytes
    def _open_legacy(self):
        f = self._file
        head = f.read(4)
        if head == b"PK\x03\x04":  # zip start, but is_zipfile found no central directory at the end
            raise A2SBError(f"{f.name}: {_CORRUPT} (a zip archive whose end is missing)")
        if head[:1] != b"\x80":
            raise A2SBError(f"{f.name}: {_CORRUPT} (neither a zip archive nor a legacy torch.save stream)")
        f.seek(0)
        if _load_plain(f) != _LEGACY_MAGIC or _load_plain(f) != _LEGACY_PROTOCOL:
            raise A2SBError(f"{f.name}: {_CORRUPT} (not a torch.save stream)")
        if not isinstance(_load_plain(f), dict):  # sys_info
            raise pickle.UnpicklingError("malformed header")
        self.root = _Unpickler(f, self._dtypes).load()
        keys = _load_plain(f)
        if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)):
            raise pickle.UnpicklingError("malformed storage list")
        end = os.fstat(f.fileno()).st_size
        self._index: dict[str, tuple[int, int]] = {}
        for key in keys:
            head = f.read(8)
            dtype = self._dtypes.get(key)
            if len(head) < 8:
                raise EOFError("storage data ends early")
            if dtype is None:
                break  # unknown element size: later records cannot be located (only fatal if needed)
            nbytes = struct.unpack("<q", head)[0] * dtype.itemsize
            if nbytes < 0 or f.tell() + nbytes > end:
                raise EOFError("storage data ends early")
            self._index[key] = (f.tell(), nbytes)
            f.seek(nbytes, os.SEEK_CUR)
        self._big_endian = False  # legacy storages are always written little-endian
        self._read = self._read_legacy

    def _read_legacy(self, key: str) -> torch.Tensor:
        if key not in self._index:
            raise pickle.UnpicklingError(f"storage {key} cannot be located")
        offset, nbytes = self._index[key]
        raw = torch.empty(nbytes, dtype=torch.uint8)
        self._file.seek(offset)
        if self._file.readinto(memoryview(raw.numpy())) != nbytes:
            raise EOFError("storage data ends early")
        return raw

    # -- tensors
    def _storage(self, key: str, dtype: torch.dtype) -> torch.Tensor:
        if (key, dtype.itemsize) not in self._cache:
            raw = self._read(key)
            unit = dtype.itemsize // 2 if dtype.is_complex else dtype.itemsize
            if self._big_endian and unit > 1:
                raw = raw[: raw.numel() // unit * unit].view(-1, unit).flip(1).reshape(-1)
            self._cache[(key, dtype.itemsize)] = raw  # one buffer per record keeps shared storages shared
        return self._cache[(key, dtype.itemsize)]

    def tensor(self, lazy: _LazyTensor) -> torch.Tensor:
        ref, offset, size, stride = lazy.storage, lazy.offset, lazy.size, lazy.stride
        if not isinstance(ref, _StorageRef):
            raise pickle.UnpicklingError("tensor without a storage record")
        if not isinstance(ref.dtype, torch.dtype):
            raise A2SBError(f"{self._file.name}: a state_dict tensor uses a storage type this reader "
                            "does not support")
        if not (_is_index(offset) and isinstance(size, tuple) and isinstance(stride, tuple)
                and len(size) == len(stride) and all(map(_is_index, size + stride))):
            raise pickle.UnpicklingError("malformed tensor record")
        raw = self._storage(ref.key, ref.dtype)
        available = raw.numel() // ref.dtype.itemsize - ref.offset
        if ref.count is not None:
            available = min(available, ref.count)
        # explicit bounds check: Tensor.set_ would silently grow the storage instead of failing
        needed = 0 if 0 in size else offset + 1 + sum((n - 1) * s for n, s in zip(size, stride))
        if needed > available:
            raise EOFError(f"tensor needs {needed} elements, its storage holds {max(available, 0)}")
        return torch.empty(0, dtype=ref.dtype).set_(raw.untyped_storage(), ref.offset + offset, size, stride)


# ------------------------------------------------------------------------------ state dict helpers

def split_network_state(state: Mapping) -> tuple[dict, torch.Tensor | None]:
    """(network state without the `vf_model.` prefix, `t_to_emb.multipliers` or None) from a released
    Lightning checkpoint's state dict; a bare network state is returned as is."""
    multipliers = state.get(MULTIPLIERS_KEY)
    net = {k[len(NETWORK_PREFIX):]: v for k, v in state.items() if k.startswith(NETWORK_PREFIX)}
    if net:
        return net, multipliers
    if "input_projection.weight" in state:
        return {k: v for k, v in state.items() if k != MULTIPLIERS_KEY}, multipliers
    raise A2SBError(f"no network weights in the state dict (no '{NETWORK_PREFIX}' keys and no "
                    "'input_projection.weight')")


def _first(keys: list[str], n: int = 5) -> str:
    more = f", ... (+{len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def check_state_dict(expected: Mapping[str, tuple[int, ...]], state: Mapping, source: str) -> None:
    """Raise A2SBError unless `state` has exactly the keys of `expected`, with those shapes."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = []
    for k, shape in expected.items():
        if k in state:
            got = getattr(state[k], "shape", None)
            if got is None or tuple(got) != tuple(shape):
                got_text = str(tuple(got)) if got is not None else f"a {type(state[k]).__name__}"
                mismatched.append(f"{k}: expected {tuple(shape)} got {got_text}")
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s): {_first(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s): {_first(unexpected)}")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatch(es): {_first(mismatched)}")
    if problems:
        raise A2SBError(f"{source}: weights do not fit the network: " + "; ".join(problems))


# ------------------------------------------------------------------------------ model folders

def _check_cutoffs(config: Mapping, n_experts: int, source: str) -> None:
    cutoffs = config.get("t_cutoffs", [])  # absent: a single expert
    if not (isinstance(cutoffs, (list, tuple))
            and all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in cutoffs)):
        raise A2SBError(f"{source}: t_cutoffs must be a list of numbers, got {cutoffs!r}")
    if not all(a < b for a, b in zip([0.0, *cutoffs], [*cutoffs, 1.0])):
        raise A2SBError(f"{source}: t_cutoffs {cutoffs} must increase strictly inside (0, 1)")
    if n_experts != len(cutoffs) + 1:
        raise A2SBError(f"{source}: {n_experts} expert(s) but t_cutoffs {cutoffs} needs {len(cutoffs) + 1}")


def _atomic_write(target: Path, write: Callable[[str], None]) -> None:
    """Write via a temporary file in the same folder + os.replace, so readers never see half a file.
    The result gets the mode of any new file (0666 less the umask): safetensors writes 0600 files."""
    tmp = temporary_beside(target)
    mode = os.stat(tmp).st_mode & 0o777
    try:
        write(tmp)
        os.chmod(tmp, mode)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def save_bundle(folder: str | os.PathLike, expert_states: list[dict[str, torch.Tensor]],
                config: dict) -> None:
    """Write a model folder: `model.safetensors` (tensors `expert{i}.<key>`, dtypes as given) and
    `config.json` (`config`, pretty-printed)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    if not expert_states:
        raise A2SBError("no expert weights to save")
    _check_cutoffs(config, len(expert_states), str(folder))
    text = json.dumps(config, indent=2) + "\n"  # fails before anything is written
    tensors, storages = {}, set()
    for i, state in enumerate(expert_states):
        for key, value in state.items():
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"expert {i} entry {key!r} is a {type(value).__name__}, not a tensor")
            t = value.detach().cpu().contiguous()
            if t.numel():
                # safetensors refuses tensors that share memory (views, tied weights): copy repeats
                ptr = t.untyped_storage().data_ptr()
                if ptr in storages:
                    t = t.clone()
                storages.add(t.untyped_storage().data_ptr())
            tensors[f"expert{i}.{key}"] = t
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"format": "pt", "a2sb_experts": str(len(expert_states))}
    _atomic_write(folder / WEIGHTS_FILE, lambda tmp: save_file(tensors, tmp, metadata=meta))
    _atomic_write(folder / CONFIG_FILE, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def load_bundle(path: str | os.PathLike) -> tuple[list[dict[str, torch.Tensor]], dict]:
    """(expert states in t order, config) from a model folder or its `model.safetensors` file."""
    from safetensors.torch import load_file

    path = Path(path)
    if path.is_dir():
        weights, config_path = path / WEIGHTS_FILE, path / CONFIG_FILE
    elif path.is_file() and path.suffix == ".safetensors":
        weights, config_path = path, path.parent / CONFIG_FILE
    elif not path.exists():
        raise A2SBError(f"model folder not found: {path}")
    else:
        raise A2SBError(f"{path}: expected a model folder or a .safetensors file")
    for p in (weights, config_path):
        if not p.is_file():
            raise A2SBError(f"{path}: model folder has no {p.name}")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise A2SBError(f"{config_path}: invalid JSON ({where}: {exc.msg})") from exc
    except UnicodeDecodeError as exc:
        raise A2SBError(f"{config_path}: invalid JSON (not UTF-8 text)") from exc
    if not isinstance(config, dict):
        raise A2SBError(f"{config_path}: expected a JSON object, got {type(config).__name__}")
    try:
        flat = load_file(weights)
    except Exception as exc:  # SafetensorError and friends
        raise A2SBError(f"{weights}: not a safetensors file, or it is truncated or corrupt ({exc})") from exc
    experts: dict[int, dict[str, torch.Tensor]] = {}
    for name, tensor in flat.items():
        m = re.fullmatch(r"expert(\d+)\.(.+)", name)
        if m is None:
            raise A2SBError(f"{weights}: unexpected tensor '{name}' (expected expert<i>.<key>)")
        experts.setdefault(int(m[1]), {})[m[2]] = tensor
    if sorted(experts) != list(range(len(experts))):
        raise A2SBError(f"{weights}: expert indices {sorted(experts)} are not 0..{len(experts) - 1}")
    if not experts:
        raise A2SBError(f"{weights}: no expert weights in the file")
    _check_cutoffs(config, len(experts), str(path))
    return [experts[i] for i in range(len(experts))], config
