"""Try the pipeline on your own images: downsample, reconstruct, classify, compare.

    python -m dario_utils.evaluation.upscale photo.jpg [more.png ...] --sr realesrgan-x4plus \\
        --teacher efficientnet_lite0 --size 256 --scale 0.32 --out upscaled/ [--json]

Each image is read as RGB, resized (shorter side) and centre-cropped to ``--size``,
degraded with the report's Scaler, and brought back to ``--size`` by ``--sr``: a classical
upsampler (``bilinear``, ``bicubic``), a named SR model (``realesrgan-x4plus``) or an
RRDBNet checkpoint file (e.g. a DarioNet checkpoint). ``<stem>_panel.png`` shows
original | downsampled | reconstructed, each titled with the teacher's top-5 classes.
``--json`` prints, per image, the PSNR of the reconstruction and both top-5 lists.
Bad input (missing or unreadable image, unusable weights): one line on stderr, exit 2.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable

import torch

from dario_utils.core import metrics
from dario_utils.core.fileio import atomic_path, ensure_dir
from dario_utils.data.dataset import load_rgb, resize_center_crop
from dario_utils.data.degrade import DEFAULT_SCALE, downsample, reconstruct, upsample, UPSAMPLERS
from dario_utils.data.imagenet import imagenet_class_names
from dario_utils.models import load_sr, load_teacher, SR_NAMES, TEACHERS, TeacherWeightsError

Reconstructor = Callable[[torch.Tensor, int], torch.Tensor]


def top5(logits: torch.Tensor) -> list[dict[str, Any]]:
    """The five most probable classes of one logit vector: index, name, probability."""
    probs = logits.float().softmax(-1)
    values, indices = probs.topk(5)
    names = imagenet_class_names()
    return [{"index": int(i), "name": names[int(i)], "prob": round(float(p), 4)}
            for p, i in zip(values, indices)]


def make_reconstructor(sr: str, device: torch.device) -> Reconstructor:
    """``f(x_small, size)`` for a classical upsampler, a named SR model or a checkpoint."""
    if sr in UPSAMPLERS:
        return lambda small, size: upsample(small, size, sr)
    model = load_sr(sr, device=device)
    return lambda small, size: reconstruct(model, small, size)


def save_panel(target: Path, images: list[torch.Tensor], titles: list[str]) -> None:
    """A row of images with a title above each, written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, axes = plt.subplots(1, len(images), figsize=(4 * len(images), 4))
    for ax, image, title in zip(axes, images, titles):
        ax.imshow(image.permute(1, 2, 0).float().cpu().numpy(), interpolation="nearest")
        ax.set_title(title, fontsize=8, loc="left", family="monospace")
        ax.axis("off")
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)


def _title(label: str, top: list[dict[str, Any]]) -> str:
    return "\n".join([label] + [f"{t['prob']:6.1%} {t['name'][:28]}" for t in top])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m dario_utils.evaluation.upscale",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    parser.add_argument("--sr", default="realesrgan-x4plus",
                        help=f"{', '.join(UPSAMPLERS + tuple(SR_NAMES))} or a checkpoint path")
    parser.add_argument("--teacher", default="efficientnet_lite0", choices=sorted(TEACHERS))
    parser.add_argument("--teacher-weights", help="teacher state-dict file (default: its own)")
    parser.add_argument("--size", type=int, default=256, help="crop size in pixels")
    parser.add_argument("--scale", type=float, default=DEFAULT_SCALE, help="downsampling factor")
    parser.add_argument("--out", type=Path, default=Path("upscaled"), help="panel folder")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Process every image; return one result dict per image."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    originals = {}
    for path in args.images:
        originals[path] = resize_center_crop(load_rgb(path), args.size)  # ImageReadError names the file
    teacher = load_teacher(args.teacher, device, args.teacher_weights)
    rebuild = make_reconstructor(args.sr, device)
    ensure_dir(args.out)
    results = []
    with torch.inference_mode():
        for path, image in originals.items():
            x = image.unsqueeze(0).to(device)
            small = downsample(x, args.scale)
            y = rebuild(small, args.size)
            logits = teacher(torch.cat([x, y]))
            tops = [top5(logits[0]), top5(teacher(small)[0]), top5(logits[1])]
            psnr = float(metrics.psnr(y, x)[0])
            save_panel(args.out / f"{path.stem}_panel.png", [x[0], small[0], y[0]], [
                _title(f"original {args.size} px", tops[0]),
                _title(f"downsampled {small.shape[-1]} px", tops[1]),
                _title(f"{args.sr} ({psnr:.2f} dB)", tops[2])])
            results.append({"image": str(path), "psnr": round(psnr, 4),
                            "original": tops[0], "reconstruction": tops[2]})
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        results = run(args)
    except (ValueError, OSError, ModuleNotFoundError, TeacherWeightsError) as err:
        # ValueError covers CheckpointError and unreadable images
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
