"""The report's degradation ("Scaler") and the ways back up to the original size.

All functions take batched images (B, 3, H, W) with values in [0, 1], on any device, in
float32 or bfloat16, and keep device and dtype. Resizing is torchvision's (antialiased),
as in the authors' ``transforms.Resize``.
"""
from __future__ import annotations

import torch
from torch import nn
from torchvision.transforms.v2 import functional as TF

BLUR_KERNEL = 3
BLUR_SIGMA = 0.2
DEFAULT_SCALE = 0.32
UPSAMPLERS = ("bilinear", "bicubic")

Size = int | tuple[int, int]


def resize(x: torch.Tensor, size: Size, mode: str = "bilinear") -> torch.Tensor:
    """torchvision's antialiased resize of a batch to ``size`` (a side or (height, width))."""
    hw = [size, size] if isinstance(size, int) else list(size)
    return TF.resize(x, hw, interpolation=TF.InterpolationMode(mode), antialias=True)


def downsample(x: torch.Tensor, scale: float = DEFAULT_SCALE) -> torch.Tensor:
    """Gaussian blur (kernel 3, sigma 0.2), then bilinear resize to ``int(side * scale)``.

    256 px -> 81 px and 128 px -> 40 px at the default scale 0.32.
    """
    h, w = x.shape[-2:]
    blurred = TF.gaussian_blur(x, [BLUR_KERNEL, BLUR_KERNEL], [BLUR_SIGMA, BLUR_SIGMA])
    return resize(blurred, (int(h * scale), int(w * scale)), "bilinear")


def upsample(x: torch.Tensor, size: Size, mode: str = "bilinear") -> torch.Tensor:
    """Classical interpolation (one of :data:`UPSAMPLERS`) to ``size``, clamped to [0, 1]."""
    if mode not in UPSAMPLERS:
        raise ValueError(f"unknown upsampler {mode!r}; known: {', '.join(UPSAMPLERS)}")
    return resize(x, size, mode).clamp(0, 1)


def to_size(sr_output: torch.Tensor, size: Size) -> torch.Tensor:
    """An SR net's output resized (bilinear, antialiased) to ``size``, clamped to [0, 1]."""
    return resize(sr_output, size, "bilinear").clamp(0, 1)


def reconstruct(sr_model: nn.Module, x_small: torch.Tensor, size: Size) -> torch.Tensor:
    """``sr_model(x_small)`` brought to ``size`` by :func:`to_size`.

    Gradients flow through (the fine-tuning loss uses this); wrap in ``torch.no_grad()``
    or ``torch.inference_mode()`` to evaluate.
    """
    return to_size(sr_model(x_small), size)
