"""ESRGAN's generator, RRDBNet (Wang et al., ECCV-W 2018), with BasicSR module names.

Structure (paper, Fig. 4): ``conv_first`` -> ``body`` (``nb`` residual-in-residual dense
blocks) -> ``conv_body``, added to the ``conv_first`` features -> two rounds of
nearest-neighbour x2 upsampling each followed by a 3x3 conv (``conv_up1``, ``conv_up2``)
and LeakyReLU(0.2) -> ``conv_hr`` + LeakyReLU -> ``conv_last``.

The network always upsamples x4 internally. As in BasicSR (so Real-ESRGAN's x2 files
load), ``scale=2`` first folds the input with ``pixel_unshuffle(2)`` (``in_nc * 4``
channels into ``conv_first``) and ``scale=1`` with ``pixel_unshuffle(4)``.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

SUPPORTED_SCALES = (1, 2, 4)


class ResidualDenseBlock(nn.Module):
    """Five densely connected 3x3 convs (growth ``gc``); output scaled by 0.2 plus input."""

    def __init__(self, nf: int = 64, gc: int = 32) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(nf, gc, 3, 1, 1)
        self.conv2 = nn.Conv2d(nf + gc, gc, 3, 1, 1)
        self.conv3 = nn.Conv2d(nf + 2 * gc, gc, 3, 1, 1)
        self.conv4 = nn.Conv2d(nf + 3 * gc, gc, 3, 1, 1)
        self.conv5 = nn.Conv2d(nf + 4 * gc, nf, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            feats.append(self.lrelu(conv(torch.cat(feats, 1))))
        return self.conv5(torch.cat(feats, 1)) * 0.2 + x


class RRDB(nn.Module):
    """Residual-in-residual dense block: three RDBs, output scaled by 0.2 plus input."""

    def __init__(self, nf: int = 64, gc: int = 32) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(nf, gc)
        self.rdb2 = ResidualDenseBlock(nf, gc)
        self.rdb3 = ResidualDenseBlock(nf, gc)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    """ESRGAN generator mapping (B, in_nc, H, W) to (B, out_nc, H*scale, W*scale)."""

    def __init__(
        self, in_nc: int = 3, out_nc: int = 3, nf: int = 64, nb: int = 23, gc: int = 32,
        scale: int = 4,
    ) -> None:
        super().__init__()
        if scale not in SUPPORTED_SCALES:
            raise ValueError(f"RRDBNet scale must be one of {SUPPORTED_SCALES}, got {scale}")
        self._config = dict(in_nc=in_nc, out_nc=out_nc, nf=nf, nb=nb, gc=gc, scale=scale)
        self.unshuffle = 4 // scale
        self.conv_first = nn.Conv2d(in_nc * self.unshuffle**2, nf, 3, 1, 1)
        self.body = nn.Sequential(*(RRDB(nf, gc) for _ in range(nb)))
        self.conv_body = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_hr = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_last = nn.Conv2d(nf, out_nc, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)

    @property
    def config(self) -> dict[str, int]:
        """Constructor arguments: ``RRDBNet(**net.config)`` builds the same architecture."""
        return dict(self._config)

    def head(self, x: torch.Tensor, blocks: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``conv_first`` features and the output of the first ``blocks`` RRDBs (all by default).

        With the head frozen, these two tensors are all the rest of the net needs:
        ``net.tail(*net.head(x, k), k)`` equals ``net(x)``.
        """
        if self.unshuffle > 1:
            x = F.pixel_unshuffle(x, self.unshuffle)
        feat = self.conv_first(x)
        return feat, self.body[:len(self.body) if blocks is None else blocks](feat)

    def tail(self, feat: torch.Tensor, trunk: torch.Tensor, blocks: int | None = None) -> torch.Tensor:
        """The rest of the net after :meth:`head`: RRDBs from ``blocks`` on, trunk conv, upsampler."""
        feat = feat + self.conv_body(self.body[len(self.body) if blocks is None else blocks:](trunk))
        for conv in (self.conv_up1, self.conv_up2):
            feat = self.lrelu(conv(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(*self.head(x))
