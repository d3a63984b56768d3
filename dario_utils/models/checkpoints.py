"""Every RRDBNet checkpoint format the study meets, read into one :class:`RRDBNet`.

Key schemes of the flat state dict (all hold the same tensors, named differently):

``basicsr``
    BasicSR / Real-ESRGAN and this project: ``conv_first``, ``body.N.rdbK.convJ``,
    ``conv_body``, ``conv_up1``, ``conv_up2``, ``conv_hr``, ``conv_last``.
``esrgan``
    ESRGAN's released ``RRDB_ESRGAN_x4.pth`` / ``RRDB_PSNR_x4.pth``: ``conv_first``,
    ``RRDB_trunk.N.RDBK.convJ``, ``trunk_conv``, ``upconv1``, ``upconv2``, ``HRconv``,
    ``conv_last``.
``esrgan_old``
    ESRGAN's first ("old arch") files, one ``nn.Sequential`` named ``model``:
    ``model.0`` conv_first; ``model.1`` the shortcut block whose ``sub.N.RDBK.convJ.0`` are
    the RRDB convs and ``sub.<nb>`` the trunk conv; then the flattened upsampler
    ``model.2`` upsample, ``model.3`` conv, ``model.4`` LeakyReLU, ``model.5`` upsample,
    ``model.6`` conv, ``model.7`` LeakyReLU; ``model.8`` HR conv, ``model.9`` LeakyReLU,
    ``model.10`` last conv (the layout ESRGAN's ``transer_RRDB_models.py`` converts).
    Only x4 files fit (an x2 old-arch file has a single upsampling conv).

Containers around a flat state dict, detected too: BasicSR's ``{"params_ema": ...}`` /
``{"params": ...}`` (``params_ema`` preferred), DataParallel's ``module.`` prefix, and the
study's own checkpoint written by :func:`save_sr_checkpoint`::

    {"state_dict": <basicsr keys>, "model_config": RRDBNet kwargs,
     "provenance": {profile, teacher, commit, epoch, ...}, <extra: optimizer, ...>}

Files without a config get one inferred from the tensor shapes (:func:`infer_config`).
Training adds what a resumed run needs: the optimizer's state and :func:`rng_state`; an
epoch's weights wait in memory as a :class:`Snapshot` until they are written.
"""
from __future__ import annotations

import pickle
import random
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from dario_utils.core.fileio import save_torch
from dario_utils.models.rrdbnet import RRDBNet

StateDict = dict[str, torch.Tensor]

# (basicsr template, scheme template); {n},{k},{j},{nb} stand for integers, {p} for
# "weight" / "bias". {nb} (number of RRDBs) appears only on the scheme side.
_RULES: dict[str, list[tuple[str, str]]] = {
    "basicsr": [
        ("conv_first.{p}", "conv_first.{p}"),
        ("body.{n}.rdb{k}.conv{j}.{p}", "body.{n}.rdb{k}.conv{j}.{p}"),
        ("conv_body.{p}", "conv_body.{p}"),
        ("conv_up1.{p}", "conv_up1.{p}"),
        ("conv_up2.{p}", "conv_up2.{p}"),
        ("conv_hr.{p}", "conv_hr.{p}"),
        ("conv_last.{p}", "conv_last.{p}"),
    ],
    "esrgan": [
        ("conv_first.{p}", "conv_first.{p}"),
        ("body.{n}.rdb{k}.conv{j}.{p}", "RRDB_trunk.{n}.RDB{k}.conv{j}.{p}"),
        ("conv_body.{p}", "trunk_conv.{p}"),
        ("conv_up1.{p}", "upconv1.{p}"),
        ("conv_up2.{p}", "upconv2.{p}"),
        ("conv_hr.{p}", "HRconv.{p}"),
        ("conv_last.{p}", "conv_last.{p}"),
    ],
    "esrgan_old": [
        ("conv_first.{p}", "model.0.{p}"),
        ("body.{n}.rdb{k}.conv{j}.{p}", "model.1.sub.{n}.RDB{k}.conv{j}.0.{p}"),
        ("conv_body.{p}", "model.1.sub.{nb}.{p}"),
        ("conv_up1.{p}", "model.3.{p}"),
        ("conv_up2.{p}", "model.6.{p}"),
        ("conv_hr.{p}", "model.8.{p}"),
        ("conv_last.{p}", "model.10.{p}"),
    ],
}
SCHEMES = tuple(_RULES)
_WRAPPER_KEYS = ("params_ema", "params", "state_dict")
_STRIPPED_PREFIXES = ("module.", "_orig_mod.")
_DARIONET_KEYS = ("state_dict", "model_config", "provenance")
_ZIP_HEAD = b"PK\x03\x04"  # torch.save since PyTorch 1.6
_LEGACY_HEAD = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"  # before: its magic number


class CheckpointError(ValueError):
    """A checkpoint that fits no known key scheme, or not the architecture asked for."""


class CheckpointReadError(CheckpointError):
    """A file ``torch.load(weights_only=True)`` cannot read: truncated, no PyTorch file, unsafe pickle."""


def _regex(template: str) -> re.Pattern[str]:
    pattern = re.escape(template)
    for name in ("n", "k", "j", "nb"):
        pattern = pattern.replace(re.escape("{" + name + "}"), f"(?P<{name}>\\d+)")
    return re.compile(pattern.replace(re.escape("{p}"), "(?P<p>weight|bias)") + "$")


_COMPILED = {
    scheme: [(basic, _regex(basic), other, _regex(other)) for basic, other in rules]
    for scheme, rules in _RULES.items()
}


def _rename(key: str, scheme: str, to_basicsr: bool, nb: int = 0) -> str | None:
    """``key`` renamed between ``scheme`` and BasicSR; ``None`` when no rule matches."""
    for basic, basic_re, other, other_re in _COMPILED[scheme]:
        source_re, target = (other_re, basic) if to_basicsr else (basic_re, other)
        match = source_re.match(key)
        if match:
            return target.format(**{"nb": nb, **match.groupdict()})
    return None


def _recognised(state_dict: StateDict, scheme: str) -> int:
    return sum(_rename(k, scheme, to_basicsr=True) is not None for k in state_dict)


def detect_scheme(state_dict: StateDict) -> str:
    """Name of the key scheme (one of :data:`SCHEMES`) every key of ``state_dict`` fits.

    Raises :class:`CheckpointError` naming the closest scheme and the keys that do not fit.
    """
    counts = {scheme: _recognised(state_dict, scheme) for scheme in SCHEMES}
    best = max(SCHEMES, key=lambda scheme: counts[scheme])  # ties: order of SCHEMES
    if state_dict and counts[best] == len(state_dict):
        return best
    raise CheckpointError(_mismatch_message(state_dict, best, "fits no known RRDBNet key scheme"))


def to_basicsr(state_dict: StateDict) -> StateDict:
    """``state_dict`` in any scheme renamed to BasicSR keys (tensors shared, not copied)."""
    scheme = detect_scheme(state_dict)
    return {_rename(k, scheme, to_basicsr=True): v for k, v in state_dict.items()}  # type: ignore[misc]


def from_basicsr(state_dict: StateDict, scheme: str) -> StateDict:
    """A BasicSR-keyed ``state_dict`` renamed to ``scheme`` (used to write test files)."""
    if scheme not in _RULES:
        raise ValueError(f"unknown scheme {scheme!r}; known: {', '.join(SCHEMES)}")
    nb = _count_blocks(state_dict)
    renamed = {}
    for key, value in state_dict.items():
        new = _rename(key, scheme, to_basicsr=False, nb=nb)
        if new is None:
            raise CheckpointError(f"{key!r} is not an RRDBNet key in BasicSR naming")
        renamed[new] = value
    return renamed


def _count_blocks(basicsr: StateDict) -> int:
    indices = {int(k.split(".")[1]) for k in basicsr if k.startswith("body.")}
    return max(indices) + 1 if indices else 0


def infer_config(state_dict: StateDict) -> dict[str, int]:
    """RRDBNet kwargs read off the tensor shapes of ``state_dict`` (any scheme).

    ``scale`` comes from how many channels ``conv_first`` takes per output channel
    (1 -> x4, 4 -> x2, 16 -> x1: BasicSR's pixel-unshuffle), assuming in_nc == out_nc.
    """
    return _infer_basicsr(to_basicsr(state_dict))


def _infer_basicsr(sd: StateDict) -> dict[str, int]:
    try:
        first, last = sd["conv_first.weight"], sd["conv_last.weight"]
        gc = sd["body.0.rdb1.conv1.weight"].shape[0]
    except KeyError as err:
        raise CheckpointError(f"cannot infer the RRDBNet config: no {err.args[0]!r}") from None
    out_nc, in_channels = last.shape[0], first.shape[1]
    ratio = in_channels // out_nc if in_channels % out_nc == 0 else 1
    unshuffle = {4: 2, 16: 4}.get(ratio, 1)
    return dict(in_nc=in_channels // unshuffle**2, out_nc=out_nc, nf=first.shape[0],
                nb=_count_blocks(sd), gc=gc, scale=4 // unshuffle)


def _expected(config: dict[str, int], scheme: str) -> dict[str, torch.Size]:
    """Key -> shape of an ``RRDBNet(**config)`` in ``scheme``, built without memory."""
    with torch.device("meta"):
        reference = RRDBNet(**config).state_dict()
    return {k: v.shape for k, v in from_basicsr(reference, scheme).items()}


def _mismatch_message(state_dict: StateDict, scheme: str, problem: str,
                      config: dict[str, int] | None = None, limit: int = 5) -> str:
    """One message naming ``scheme``, the first missing / unexpected keys and bad shapes."""
    if config is None:
        try:
            config = _infer_basicsr({new: v for k, v in state_dict.items()
                                     if (new := _rename(k, scheme, to_basicsr=True))})
        except CheckpointError:  # too little recognised to infer: compare with the defaults
            with torch.device("meta"):
                config = RRDBNet().config
    expected = _expected(config, scheme)
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    shapes = [f"{k} {tuple(state_dict[k].shape)} (expected {tuple(s)})"
              for k, s in expected.items() if k in state_dict and state_dict[k].shape != s]
    parts = [f"{problem}; closest scheme {scheme!r} ({_recognised(state_dict, scheme)} of "
             f"{len(state_dict)} keys recognised) for RRDBNet{config}"]
    for label, items in (("missing keys", missing), ("unexpected keys", unexpected),
                         ("shape mismatches", shapes)):
        if items:
            more = f" and {len(items) - limit} more" if len(items) > limit else ""
            parts.append(f"{label}: {', '.join(items[:limit])}{more}")
    return "; ".join(parts)


@dataclass
class SRCheckpoint:
    """A checkpoint read into BasicSR keys, with its config and where it came from."""

    state_dict: StateDict
    config: dict[str, int]
    scheme: str
    container: str  # "plain", "params_ema", "params" or "darionet"
    provenance: dict[str, Any] = field(default_factory=dict)


def _unwrap(obj: object) -> tuple[StateDict, str, dict | None, dict]:
    """Flat state dict, container name, stored config and provenance of a loaded file."""
    if not isinstance(obj, dict):
        raise CheckpointError(f"expected a dict of tensors, got {type(obj).__name__}")
    container, config, provenance = "plain", None, {}
    for key in _WRAPPER_KEYS:
        if isinstance(obj.get(key), dict):
            container = "darionet" if key == "state_dict" else key
            config, provenance = obj.get("model_config"), obj.get("provenance") or {}
            obj = obj[key]
            break
    flat = {}
    for key, value in obj.items():
        for prefix in _STRIPPED_PREFIXES:
            key = key.removeprefix(prefix)
        flat[key] = value
    return flat, container, config, provenance


def _first_sentence(text: str, limit: int = 160) -> str:
    """The first sentence of the first non-empty line of ``text``, at most ``limit`` characters."""
    line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    sentence = line.split(". ")[0].rstrip(".")
    return sentence if len(sentence) <= limit else sentence[:limit - 3] + "..."


def _load_weights_only(path: Path) -> object:
    """``torch.load(path, weights_only=True)``; :class:`CheckpointReadError` when it fails.

    The reason comes from the file's first bytes (torch writes a zip archive, before
    PyTorch 1.6 a pickle opened by its magic number) and from torch's error.
    """
    with path.open("rb") as file:  # no permission and the like: OSError, passed on as it is
        head = file.read(len(_LEGACY_HEAD))
    try:
        with warnings.catch_warnings():  # one line on stderr: not torch's warning on plain pickles
            warnings.filterwarnings("ignore", "Detected pickle protocol", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch.load fails with many types: OSError, RuntimeError, KeyError, ...
        detail = str(err).partition("WeightsUnpickler error:")[2]
        refused = _first_sentence(detail) if isinstance(err, pickle.UnpicklingError) else ""
        if not head:
            reason = "empty file"
        elif head.startswith((_ZIP_HEAD, _LEGACY_HEAD)):
            reason = (f"it holds objects that weights_only loading refuses ({refused})" if refused else
                      f"truncated or corrupt file ({_first_sentence(str(err)) or type(err).__name__})")
        elif head.startswith(b"\x80") and refused:
            reason = f"a plain pickle, not a PyTorch file, that weights_only loading refuses ({refused})"
        else:
            reason = "not a PyTorch file"
        raise CheckpointReadError(f"{path} is not a readable checkpoint: {reason}") from None


def load_weights_only(path: str | Path) -> object:
    """Any torch file read safely (``torch.load(weights_only=True)``, on the CPU): training states,
    teachers' weights, caches; :class:`CheckpointReadError` naming the file and why where it is
    unreadable (truncated, no PyTorch file, an unsafe pickle)."""
    return _load_weights_only(Path(path))


def read_sr_checkpoint(path: str | Path) -> SRCheckpoint:
    """Read any supported RRDBNet checkpoint file (``torch.load(weights_only=True)``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no SR checkpoint at {path}; known names: {', '.join(SR_NAMES)}")
    obj = _load_weights_only(path)
    try:
        flat, container, config, provenance = _unwrap(obj)
        scheme = detect_scheme(flat)
        config = config or infer_config(flat)
        expected = _expected(config, scheme)
        if set(expected) != set(flat) or any(flat[k].shape != s for k, s in expected.items()):
            raise CheckpointError(_mismatch_message(
                flat, scheme, "does not match its RRDBNet architecture", config))
    except CheckpointError as err:
        raise CheckpointError(f"{path}: {err}") from None
    return SRCheckpoint(to_basicsr(flat), config, scheme, container, provenance)


def _realesrgan_x4plus() -> Path:
    from dario_utils.models.ncnn import convert_realesrgan_x4plus

    return convert_realesrgan_x4plus()


SR_NAMES: dict[str, Callable[[], Path]] = {"realesrgan-x4plus": _realesrgan_x4plus}


def load_sr(name_or_path: str | Path, device: str | torch.device = "cpu",
            expect_config: dict[str, int] | None = None) -> RRDBNet:
    """An :class:`RRDBNet` in eval mode with the weights of a named model or a file.

    ``name_or_path``: a key of :data:`SR_NAMES` (``"realesrgan-x4plus"``) or a checkpoint
    path in any supported format. ``expect_config``: RRDBNet kwargs the file must have
    (only the fields given are compared); a difference raises :class:`CheckpointError`.
    """
    source = SR_NAMES[name_or_path]() if name_or_path in SR_NAMES else Path(name_or_path)
    ckpt = read_sr_checkpoint(source)
    if expect_config:
        differ = [f"{k}={ckpt.config.get(k)} (requested {v})"
                  for k, v in expect_config.items() if ckpt.config.get(k) != v]
        if differ:
            raise CheckpointError(f"{source}: architecture differs from the requested one: "
                                  + ", ".join(differ))
    model = RRDBNet(**ckpt.config)
    model.load_state_dict(ckpt.state_dict)
    return model.to(device).eval()


def save_sr_checkpoint(path: str | Path, model: nn.Module, provenance: dict[str, Any],
                       **extra: Any) -> Path:
    """Atomically write the study's checkpoint format (see the module docstring).

    ``model``: an :class:`RRDBNet`, possibly wrapped (DDP's ``.module``). ``extra``:
    further top-level entries such as ``optimizer``; they must not reuse the reserved keys.
    """
    net = getattr(model, "module", model)
    clash = set(extra) & set(_DARIONET_KEYS)
    if clash:
        raise ValueError(f"extra entries may not be named {sorted(clash)}")
    state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
    return save_torch({"state_dict": state, "model_config": net.config,
                       "provenance": dict(provenance), **extra}, Path(path))


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch RNG states, in types ``torch.load(weights_only=True)`` reads."""
    numpy_state = np.random.get_state(legacy=False)
    numpy_state["state"]["key"] = numpy_state["state"]["key"].tolist()
    return {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` saved."""
    random.setstate(state["python"])
    numpy_state = state["numpy"]
    numpy_state["state"]["key"] = np.asarray(numpy_state["state"]["key"], dtype=np.uint32)
    np.random.set_state(numpy_state)
    torch.set_rng_state(state["torch"])


@dataclass
class Snapshot:
    """A net's weights kept in memory until written; saved by :func:`save_sr_checkpoint` like the net."""

    state: StateDict
    config: dict[str, int]
    provenance: dict[str, Any]

    @classmethod
    def of(cls, net: nn.Module, provenance: dict[str, Any]) -> Snapshot:
        """A copy of the weights of ``net`` (possibly wrapped: DDP's ``.module``) as they are now."""
        model = getattr(net, "module", net)
        return cls({k: v.detach().clone() for k, v in model.state_dict().items()}, model.config, provenance)

    def state_dict(self) -> StateDict:
        return self.state
