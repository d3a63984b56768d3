"""What each route costs at inference: FLOPs counted, parameters, images/s measured (notebook 07).

FLOPs are counted by :class:`torch.utils.flop_counter.FlopCounterMode` on one image (convolutions
and matrix products, 2 FLOPs per multiply-add; resizes and element-wise operations are not
counted, which leaves bicubic upscaling at 0). Speed is measured in one run on this machine:
the same images, one route after the other, after one untimed batch.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

Route = Callable[[Tensor], Tensor]
"""Original-size images (B, 3, S, S) in [0, 1] -> logits (B, 1000)."""


@dataclass(frozen=True)
class CostedRoute:
    """One way to classify a downsampled image, with the networks it runs."""

    key: str
    name: str
    classify: Route
    networks: tuple[nn.Module, ...]


def count_parameters(networks: tuple[nn.Module, ...]) -> int:
    """Parameters of every network a route runs (each counted once)."""
    unique = {id(p): p for net in networks for p in net.parameters()}
    return int(sum(p.numel() for p in unique.values()))


@torch.no_grad()
def gflops_per_image(route: Route, image: Tensor) -> float:
    """GFLOPs :class:`FlopCounterMode` counts for ``route`` on one image ``(1, 3, S, S)``."""
    counter = FlopCounterMode(display=False)
    with counter:
        route(image)
    return counter.get_total_flops() / 1e9


@torch.no_grad()
def images_per_second(route: Route, batches: list[Tensor]) -> float:
    """Images per second of ``route`` over ``batches``, after one untimed warm-up batch."""
    route(batches[0])
    start = time.perf_counter()
    count = 0
    for batch in batches:
        route(batch)
        count += len(batch)
    return count / (time.perf_counter() - start)


def cost_table(routes: list[CostedRoute], batches: list[Tensor]) -> pd.DataFrame:
    """Per route: GFLOPs per image (counted), parameters, images/s (measured in this call)."""
    one = batches[0][:1]
    rows = [{"route": r.key, "name": r.name, "gflops_per_image": gflops_per_image(r.classify, one),
             "parameters": count_parameters(r.networks), "images_per_s": images_per_second(r.classify, batches)}
            for r in routes]
    return pd.DataFrame(rows)


def frontier(points: pd.DataFrame, cost: str = "gflops_per_image", score: str = "top1") -> pd.Series:
    """Whether each row is on the cost frontier: no other row is at most as costly and more accurate."""
    on = []
    for _, row in points.iterrows():
        better = (points[cost] <= row[cost]) & (points[score] > row[score])
        on.append(not bool(better.any()))
    return pd.Series(np.array(on), index=points.index, dtype=bool)
