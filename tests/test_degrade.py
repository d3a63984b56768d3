"""The report's Scaler and the ways back up."""
from __future__ import annotations

import pytest
import torch

from dario_utils.degrade import UPSAMPLERS, downsample, reconstruct, upsample
from dario_utils.models import RRDBNet

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_downsample_sizes_dtype_device(device: str, dtype: torch.dtype) -> None:
    x = torch.rand(2, 3, 256, 256, device=device).to(dtype)
    small = downsample(x)
    assert small.shape == (2, 3, 81, 81)
    assert (small.dtype, small.device.type) == (dtype, device)
    assert downsample(x[..., :128, :128]).shape == (2, 3, 40, 40)
    assert downsample(x[..., :128, :]).shape == (2, 3, 40, 81)


def test_downsample_keeps_flat_images_flat() -> None:
    x = torch.full((1, 3, 64, 64), 0.3)
    assert torch.allclose(downsample(x, 0.5), torch.full((1, 3, 32, 32), 0.3))


@pytest.mark.parametrize("mode", UPSAMPLERS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_upsample_size_and_range(mode: str, dtype: torch.dtype) -> None:
    checkers = (torch.arange(81 * 81).view(81, 81) % 2).expand(1, 3, 81, 81).to(dtype)
    y = upsample(checkers, 256, mode)
    assert y.shape == (1, 3, 256, 256) and y.dtype == dtype
    assert 0 <= float(y.min()) and float(y.max()) <= 1  # bicubic overshoots before the clamp


def test_upsample_rejects_unknown_mode() -> None:
    with pytest.raises(ValueError, match="bicubic"):
        upsample(torch.rand(1, 3, 8, 8), 16, "lanczos")


def test_reconstruct_resizes_sr_output_and_passes_gradients() -> None:
    torch.manual_seed(0)
    sr = RRDBNet(nf=8, nb=1, gc=4)
    small = torch.rand(2, 3, 20, 20)
    y = reconstruct(sr, small, 64)  # x4 -> 80 px, then back to 64
    assert y.shape == (2, 3, 64, 64)
    assert 0 <= float(y.detach().min()) and float(y.detach().max()) <= 1
    y.sum().backward()
    assert sr.conv_first.weight.grad is not None
