"""Speed of every stage, measured in one run: plain float32 eager vs the study's optimised path.

    python benchmarks/bench.py --profile demo
    python benchmarks/bench.py --profile imagenet-sample --data-root ../shared/imagenet-sample-dev --device cuda

Prints images/s for (a) evaluation of each model (SR + classify), (b) a DarioNet training
step and (c) the data pipeline (decode + Resize + CenterCrop), each as a plain version and
the optimised one, with their ratio and the batch size used. Plain = float32, eager,
``torch.no_grad`` for evaluation and a teacher whose parameters still require gradients for
training, every module in the default memory format. Optimised = what the study runs
(``dario_utils.evaluation.evaluate`` and ``dario_utils.training.train``): ``torch.inference_mode`` and a frozen
teacher; on CUDA the SR net in channels_last under bf16 autocast, the classifier judging in
float32 (bf16 autocast made the classifier alone slower: 0.71x on an H100), and for the
training step the teacher in channels_last under bf16 autocast too; with ``--compile`` also
``torch.compile``. Needs the profile's manifests (notebook 01) and, for the SR rows, its
pretrained SR weights (``sr.pretrained``).

``--batch`` is where each stage starts: on CUDA a stage that runs out of GPU memory is
measured again at half the batch (plain and optimised at the same size), and the table's
``batch`` column says which size each stage used. On CUDA each measurement repeats until
it has run for at least ``--min-seconds``.
"""
from __future__ import annotations

import argparse
import copy
import gc
import time
from typing import Callable

import torch
from torch.utils.data import DataLoader, Subset

from dario_utils.core import paths
from dario_utils.core.config import load_config
from dario_utils.core.runtime import setup_torch
from dario_utils.data.dataset import collate, manifest_dataset
from dario_utils.data.degrade import downsample, reconstruct
from dario_utils.models import build_student, load_teacher
from dario_utils.models.study_models import BASELINES, BY_KEY, PRETRAINED_SR


def rate(step: Callable[[], None], images: int, device: torch.device, repeats: int,
         min_seconds: float = 0.0) -> float:
    """Images per second of ``step``: one warm-up call, then at least ``repeats`` timed calls
    and at least ``min_seconds`` of them."""
    step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    calls, start = 0, time.perf_counter()
    while True:
        step()
        calls += 1
        if calls >= repeats:
            if device.type == "cuda":
                torch.cuda.synchronize()
            elapsed = time.perf_counter() - start
            if elapsed >= min_seconds:
                return images * calls / elapsed


def is_out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` is the GPU running out of memory."""
    return isinstance(err, torch.cuda.OutOfMemoryError) or "out of memory" in str(err).lower()


def with_batch_fallback(measure: Callable[[int], tuple[float, float]], batch: int,
                        on_retry: Callable[[int, int], None] | None = None) -> tuple[float, float, int]:
    """``measure(b)`` for ``b = batch``, halved after each out-of-memory error down to 1;
    returns its two rates and the batch size that fitted. ``on_retry(failed, next)`` is told
    of each fallback. Other errors, and running out of memory at batch 1, are raised."""
    b = batch
    while True:
        try:
            plain, fast = measure(b)
            return plain, fast, b
        except (torch.cuda.OutOfMemoryError, RuntimeError) as err:
            if not is_out_of_memory(err) or b == 1:
                raise
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        if on_retry:
            on_retry(b, b // 2)
        b //= 2


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="demo")
    parser.add_argument("--data-root")
    parser.add_argument("--device", choices=["cpu", "cuda"])
    parser.add_argument("--batch", type=int, default=8, help="batch size each stage starts at (default 8)")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls at least (default 3)")
    parser.add_argument("--min-seconds", type=float, default=None,
                        help="timed seconds at least per measurement (default 0.5 on CUDA, 0 on CPU)")
    parser.add_argument("--compile", action="store_true", help="also torch.compile the optimised models")
    args = parser.parse_args(argv)
    config = load_config(args.profile, {"data_root": args.data_root, "device": args.device},
                         output_root=paths.output_root_from_env())
    device = setup_torch(config)
    size = config.data.image_size
    cuda = device.type == "cuda"
    min_seconds = args.min_seconds if args.min_seconds is not None else (0.5 if cuda else 0.0)

    teacher = load_teacher(config.teacher.name, device=device, weights=config.teacher.weights,
                           input_size=config.teacher.input_size)
    sr = build_student(config, device)
    # the optimised copies: Module.to(memory_format=...) converts in place, so copy first
    fast_sr = copy.deepcopy(sr).to(memory_format=torch.channels_last) if cuda else sr
    judge = teacher  # the study judges in float32, in the default memory format (dario_utils.evaluation.evaluate)
    train_teacher = copy.deepcopy(teacher).to(memory_format=torch.channels_last) if cuda else teacher
    if args.compile:
        fast_sr, judge, train_teacher = torch.compile(fast_sr), torch.compile(judge), torch.compile(train_teacher)
    print(f"device {device} ({torch.cuda.get_device_name() if cuda else f'{torch.get_num_threads()} CPU threads'}), "
          f"profile {config.profile}, {size} -> {config.small_size} px, batch {args.batch} at most, "
          f"teacher {config.teacher.name}, SR nf={config.sr.nf} nb={config.sr.nb}, torch {torch.__version__}"
          + (", torch.compile" if args.compile else ""), flush=True)
    print(f"{'stage':38s} {'batch':>5s} {'plain img/s':>12s} {'optimised img/s':>16s} {'ratio':>7s}", flush=True)

    def report(name: str, plain: float, fast: float, b: int | str) -> None:
        print(f"{name:38s} {b!s:>5s} {plain:12.1f} {fast:16.1f} {fast / plain:7.2f}", flush=True)

    def retry(name: str) -> Callable[[int, int], None]:
        return lambda failed, b: print(f"  {name}: out of GPU memory at batch {failed}, trying {b}", flush=True)

    def inputs(b: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.rand(b, 3, size, size, device=device)
        return x, downsample(x, config.data.scale)

    timing = {"device": device, "repeats": args.repeats, "min_seconds": min_seconds}

    for model in BASELINES:
        def measure(b: int, model: str = model) -> tuple[float, float]:
            x, small = inputs(b)
            fast_small = small.contiguous(memory_format=torch.channels_last) if cuda else small

            def plain_step() -> None:
                with torch.no_grad():
                    teacher(BY_KEY[model].image(x, small, {PRETRAINED_SR: sr}))

            def fast_step() -> None:
                with torch.inference_mode():
                    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                        image = BY_KEY[model].image(x, fast_small if model == PRETRAINED_SR else small,
                                                    {PRETRAINED_SR: fast_sr})
                    judge(image.float())

            return rate(plain_step, b, **timing), rate(fast_step, b, **timing)

        plain, fast, b = with_batch_fallback(measure, args.batch, retry(f"evaluate {model}"))
        report(f"evaluate {model}", plain, fast, b)

    def measure_train(b: int) -> tuple[float, float]:
        x, small = inputs(b)
        with torch.no_grad():
            target = teacher(x)
        plain_optimizer = torch.optim.Adam(sr.parameters(), lr=1e-4)
        fast_optimizer = torch.optim.Adam(fast_sr.parameters(), lr=1e-4)
        fast_small = small.contiguous(memory_format=torch.channels_last) if cuda else small

        def plain_step() -> None:
            loss = torch.nn.functional.mse_loss(teacher(reconstruct(sr, small, size)).float(), target)
            plain_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            plain_optimizer.step()

        def fast_step() -> None:
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                loss = torch.nn.functional.mse_loss(train_teacher(reconstruct(fast_sr, fast_small, size)).float(),
                                                    target)
            fast_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            fast_optimizer.step()

        teacher.requires_grad_(True)  # the plain version: the teacher's parameters get gradients too
        try:
            plain = rate(plain_step, b, **timing)
        finally:
            teacher.requires_grad_(False)
            teacher.zero_grad(set_to_none=True)
            plain_optimizer.zero_grad(set_to_none=True)
        return plain, rate(fast_step, b, **timing)

    plain, fast, b = with_batch_fallback(measure_train, args.batch, retry("train step"))
    report("train step (SR + teacher, backward)", plain, fast, b)

    dataset = manifest_dataset(config, "train")
    b = args.batch
    subset = Subset(dataset, range(min(len(dataset), 8 * b)))

    def load(workers: int) -> Callable[[], None]:
        return lambda: [None for _ in DataLoader(subset, batch_size=b, num_workers=workers, collate_fn=collate)]

    workers = max(2, config.data.num_workers)
    report(f"data: decode+resize (0 vs {workers} workers)", rate(load(0), len(subset), device, 1),
           rate(load(workers), len(subset), device, 1), b)


if __name__ == "__main__":
    main()
