"""Speed of every stage, measured in one run: plain float32 eager vs the study's optimised path.

    python benchmarks/bench.py --profile demo
    python benchmarks/bench.py --profile imagenet-sample --data-root ../shared/imagenet-sample-dev --device cuda

Prints images/s for (a) evaluation of each model (SR + classify), (b) a DarioNet training
step and (c) the data pipeline (decode + Resize + CenterCrop), each as a plain version and
the optimised one, with their ratio. Plain = float32, eager, ``torch.no_grad`` for
evaluation and a teacher whose parameters still require gradients for training. Optimised
= ``torch.inference_mode``, a frozen teacher, and on CUDA also channels_last, bf16 autocast
and (``--compile``) ``torch.compile``. Needs the profile's manifests (notebook 01) and, for
the SR rows, its pretrained SR weights (notebook 02 where the profile pretrains).
"""
from __future__ import annotations

import argparse
import contextlib
import time
from typing import Callable

import torch
from torch.utils.data import DataLoader, Subset

from dario_utils.config import load_config
from dario_utils.data import collate, manifest_dataset
from dario_utils.degrade import downsample, reconstruct
from dario_utils.evaluate import apply_model
from dario_utils.models import load_teacher
from dario_utils.runtime import setup_torch
from dario_utils.train import build_student


def rate(step: Callable[[], None], images: int, device: torch.device, repeats: int) -> float:
    """Images per second of ``step`` (one warm-up call, then ``repeats`` timed calls)."""
    step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return images * repeats / (time.perf_counter() - start)


def optimised_context(device: torch.device) -> contextlib.AbstractContextManager:
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="demo")
    parser.add_argument("--data-root")
    parser.add_argument("--device", choices=["cpu", "cuda"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="also torch.compile the optimised models")
    args = parser.parse_args()
    config = load_config(args.profile, {"data_root": args.data_root, "device": args.device})
    device = setup_torch(config)
    size, b = config.data.image_size, args.batch
    cuda = device.type == "cuda"
    x = torch.rand(b, 3, size, size, device=device)
    small = downsample(x, config.data.scale)

    teacher = load_teacher(config.teacher.name, device=device, weights=config.teacher.weights)
    sr = build_student(config, device)
    fast_teacher, fast_sr = teacher, sr
    if cuda:
        fast_teacher = teacher.to(memory_format=torch.channels_last)
        fast_sr = sr.to(memory_format=torch.channels_last)
    if args.compile:
        fast_teacher, fast_sr = torch.compile(fast_teacher), torch.compile(fast_sr)
    print(f"device {device} ({torch.cuda.get_device_name() if cuda else f'{torch.get_num_threads()} CPU threads'}), "
          f"profile {config.profile}, {size} -> {small.shape[-1]} px, batch {b}, teacher {config.teacher.name}, "
          f"SR nf={config.sr.nf} nb={config.sr.nb}")
    print(f"{'stage':34s} {'plain img/s':>12s} {'optimised img/s':>16s} {'ratio':>7s}")

    def report(name: str, plain: float, fast: float) -> None:
        print(f"{name:34s} {plain:12.1f} {fast:16.1f} {fast / plain:7.2f}")

    for model in ("original", "bilinear", "bicubic", "esrgan"):
        def evaluate_step(t=teacher, s=sr, fast=False, model=model) -> None:
            ctx = torch.inference_mode() if fast else torch.no_grad()
            with ctx, (optimised_context(device) if fast else contextlib.nullcontext()):
                t(apply_model(model, x, downsample(x, config.data.scale), {"esrgan": s}))
        report(f"evaluate {model}", rate(evaluate_step, b, device, args.repeats),
               rate(lambda: evaluate_step(fast_teacher, fast_sr, True), b, device, args.repeats))

    optimizer = torch.optim.Adam(sr.parameters(), lr=1e-4)
    with torch.no_grad():
        target = teacher(x)

    def train_step(t, fast: bool) -> None:
        with optimised_context(device) if fast else contextlib.nullcontext():
            loss = torch.nn.functional.mse_loss(t(reconstruct(fast_sr if fast else sr, small, size)).float(), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    teacher.requires_grad_(True)  # the plain version: the teacher's parameters get gradients too
    plain = rate(lambda: train_step(teacher, False), b, device, args.repeats)
    teacher.requires_grad_(False)
    report("train step (SR + teacher, backward)", plain, rate(lambda: train_step(fast_teacher, True), b, device,
                                                               args.repeats))

    dataset = manifest_dataset(config, "train")
    subset = Subset(dataset, range(min(len(dataset), 8 * b)))

    def load(workers: int) -> Callable[[], None]:
        return lambda: [None for _ in DataLoader(subset, batch_size=b, num_workers=workers, collate_fn=collate)]

    workers = max(2, config.data.num_workers)
    report(f"data: decode+resize (0 vs {workers} workers)", rate(load(0), len(subset), device, 1),
           rate(load(workers), len(subset), device, 1))


if __name__ == "__main__":
    main()
