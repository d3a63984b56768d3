"""Evaluation of every model on a split: per-image metrics, Table 1, per-class reports.

One batched pass: the judge's logits on each original are computed once and every model
(``original``, ``bilinear``, ``bicubic``, ``esrgan`` = the profile's pretrained SR net,
``darionet``) is scored against them. These keys name models in result files and file
names; every table, note, report line and figure shows :data:`MODEL_NAMES` instead.
Results accumulate in ``runs/<profile>/results/per_image.csv`` (one row per image and
model) and ``summary.csv`` (time per model), so notebook 02 can score the baselines and
notebook 04 add DarioNet. Tables go to ``figures/<profile>/``.

    python -m dario_utils.evaluate --profile demo --models original,bicubic,darionet --json out.json
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from . import fileio, metrics, paths
from .config import Config, ConfigError, check_config, load_config
from .data import class_names_of, collate, manifest_dataset, read_manifest
from .degrade import downsample, reconstruct, upsample
from .head_cache import HeadFeatures, Tail, head_features, head_fingerprint, reconstruct_from_head
from .imagenet import imagenet_class_names, imagenet_wnids
from .models import build_student, load_sr, load_teacher
from .runtime import progress_enabled, setup_torch

MODELS = ("original", "bilinear", "bicubic", "esrgan", "darionet")
BASELINES = MODELS[:4]
MODEL_NAMES: dict[str, str] = {
    "original": "original",
    "bilinear": "bilinear",
    "bicubic": "bicubic",
    "esrgan": "pretrained SR",
    "darionet": "DarioNet",
}
"""The one display name of each model key, in every human-facing output (tables, notes, figures)."""
ROWS = {"original": "1", "bilinear": "2", "bicubic": "2b", "esrgan": "3", "darionet": "4"}
DESCRIPTIONS = {
    "original": "the {size} px image",
    "bilinear": "bilinear upscaling of the {small} px image",
    "bicubic": "bicubic upscaling of the {small} px image",
    "esrgan": "SR net ({sr}) on the {small} px image",
    "darionet": "pretrained SR fine-tuned with the teacher's logits, on the {small} px image",
}
# Table 1 of the report (paper profile only): CE, PSNR, top-1, test time in minutes.
REPORT_TABLE1 = {
    "original": (0.9112, float("inf"), 0.7676, 1.5),
    "bilinear": (1.9864, 25.2466, 0.5446, 1.5),
    "esrgan": (1.6946, 22.5088, 0.6063, 28.0),
    "darionet": (1.0931, 25.2211, 0.7275, 28.0),
}
TABLE_COLUMNS = ["row", "model", "name", "description", "avg_ce", "avg_psnr", "top1", "top1_ci_low", "top1_ci_high",
                 "top5", "agreement", "avg_ssim", "logit_mse", "n_images", "skipped", "seconds", "images_per_s"]


def display_name(key: str) -> str:
    """The name shown for model ``key``; other keys (e.g. ``downsampled``) as they are."""
    return MODEL_NAMES.get(key, key)


class MissingCheckpointError(FileNotFoundError):
    """DarioNet has not been trained for this profile yet."""


def darionet_checkpoint(config: Config) -> Path:
    return paths.checkpoints_dir(config.profile) / "darionet_best.pt"


def suffix(config: Config) -> str:
    """File-name suffix of results on another split than test, or judged by another classifier."""
    split = "" if config.eval.split == "test" else f"_{config.eval.split}"
    return split + ("" if config.judge == config.teacher.name else f"_judge-{config.judge}")


def load_sr_models(config: Config, models: list[str], device: torch.device,
                   checkpoint: str | None = None) -> dict[str, nn.Module]:
    """The SR networks among ``models``: the profile's pretrained SR and DarioNet."""
    nets = {}
    if "esrgan" in models:
        nets["esrgan"] = build_student(config, device)
    if "darionet" in models:
        path = Path(checkpoint) if checkpoint else darionet_checkpoint(config)
        if not path.is_file():
            raise MissingCheckpointError(
                f"no DarioNet checkpoint at {path}: run notebook 03 (python -m dario_utils.reproduce "
                f"--profile {config.profile} --only 03) or pass --checkpoint FILE")
        nets["darionet"] = load_sr(path, device=device)
    for net in nets.values():
        net.eval()
    return nets


def load_judge(config: Config, device: torch.device) -> nn.Module:
    """The classifier that evaluates: the teacher (with its weights) unless ``eval.judge`` names another."""
    weights = config.teacher.weights if config.judge == config.teacher.name else None
    return load_teacher(config.judge, device=device, weights=weights, input_size=config.teacher.input_size)


def apply_model(model: str, x: torch.Tensor, small: torch.Tensor, nets: dict[str, nn.Module]) -> torch.Tensor:
    """The image ``model`` shows the classifier: ``x`` itself, or ``small`` brought back to x's size."""
    size = x.shape[-1]
    if model == "original":
        return x
    if model in ("bilinear", "bicubic"):
        return upsample(small, size, model)
    return reconstruct(nets[model], small, size)


@torch.no_grad()
def _warm_up(config: Config, models: list[str], nets: dict[str, nn.Module], heads: dict, judge: nn.Module,
             device: torch.device, batch: int) -> None:
    """Run every model once on a blank batch, untimed (CUDA: kernel loading and cuDNN's choices
    would otherwise count against the first model timed)."""
    size = config.data.image_size
    x = torch.zeros(batch, 3, size, size, device=device)
    small = downsample(x, config.data.scale)
    judge(x)
    for model in models:
        if model in heads:
            continue
        source = small.contiguous(memory_format=torch.channels_last) if model in nets else small
        with torch.autocast("cuda", dtype=torch.bfloat16):
            image = apply_model(model, x, source, nets)
        judge(image.float())
    torch.cuda.synchronize()


def _shared_heads(config: Config, split: str, nets: dict[str, nn.Module], blocks: int, device: torch.device,
                  progress: bool) -> dict[str, HeadFeatures]:
    """The cached head features of each frozen-head net, read once for nets whose heads are
    the same (DarioNet and the pretrained SR net it started from)."""
    fingerprints = {m: head_fingerprint(net, blocks) for m, net in nets.items()}
    by_fingerprint: dict[str, HeadFeatures] = {}
    for m, net in nets.items():
        if fingerprints[m] not in by_fingerprint:
            by_fingerprint[fingerprints[m]] = head_features(config, split, net, device, progress)
    return {m: by_fingerprint[fingerprints[m]] for m in nets}


@dataclass
class EvalRun:
    """What one evaluation pass produced."""

    per_image: pd.DataFrame
    summary: pd.DataFrame


@torch.no_grad()
def evaluate(config: Config, models: list[str] | None = None, checkpoint: str | Path | None = None,
             progress: bool = True, merge: bool = True, save: bool = True) -> EvalRun:
    """Score ``models`` on the split ``config.eval.split`` and write the profile's result files
    (see :func:`suffix`): with ``merge`` their rows replace those of the same models and the
    other models' rows are kept; without it (notebook 02, a new baseline run) the files hold
    only these models, so no result of an earlier run survives. Without ``save`` nothing is
    written (notebook 06 scores variants of the study's models and keeps its own files)."""
    check_config(config)
    models = list(models or MODELS)
    unknown = set(models) - set(MODELS)
    if unknown:
        raise ConfigError(f"unknown model(s) {', '.join(sorted(unknown))}: choose from {', '.join(MODELS)}")
    split = config.eval.split
    device = setup_torch(config)
    dataset = manifest_dataset(config, split)
    loader = DataLoader(dataset, batch_size=config.eval.batch_size, shuffle=False, collate_fn=collate,
                        num_workers=config.data.num_workers)
    judge = load_judge(config, device)
    nets = load_sr_models(config, models, device, checkpoint)
    blocks = config.train.frozen_blocks  # frozen-head nets run their tails on the head's cached output
    heads = {} if blocks is None else _shared_heads(config, split, nets, blocks, device, progress)
    tails = {m: Tail(nets[m], blocks) for m in heads}
    for net in nets.values():  # channels-last convolutions: faster on CUDA and CPU
        net.to(memory_format=torch.channels_last)
    if device.type == "cuda":  # a first untimed pass pays CUDA's start-up costs
        _warm_up(config, models, nets, heads, judge, device, min(config.eval.batch_size, len(dataset)))
    manifest = dataset.manifest
    records: dict[str, list[dict]] = {m: [] for m in models}
    seconds = {m: heads[m].seconds if m in heads else 0.0 for m in models}
    skipped: list[str] = []
    bar = tqdm(loader, desc=f"evaluate {split}", unit="batch", disable=not progress_enabled(progress))
    for batch in bar:
        skipped += batch["skipped"]
        if "image" not in batch:
            continue
        x = batch["image"].to(device)
        labels = batch["label"].to(device)
        start = time.perf_counter()
        small = downsample(x, config.data.scale)
        reference_logits = judge(x)
        shared = time.perf_counter() - start
        reference_top1 = reference_logits.argmax(1)
        sr_input = small.contiguous(memory_format=torch.channels_last)
        for model in models:
            start = time.perf_counter()
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
                image = (reconstruct_from_head(tails[model], heads[model].select(batch["index"], device),
                                               x.shape[-1]) if model in heads else
                         apply_model(model, x, sr_input if model in nets else small, nets))
            # the judge sees every image in float32, as the originals (bf16 slows the classifier alone)
            logits = (judge(image.float()) if model != "original" else reference_logits).float()
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds[model] += time.perf_counter() - start + (shared if model == "original" else 0.0)
            rows = manifest.iloc[batch["index"].tolist()]
            records[model].append(pd.DataFrame({
                "image": rows["path"].to_numpy(), "wnid": rows["wnid"].to_numpy(),
                "label": labels.cpu().numpy(), "model": model, "judge": config.judge,
                "prediction": logits.argmax(1).cpu().numpy(),
                "top1": metrics.topk_hits(logits, labels, 1).cpu().numpy(),
                "top5": metrics.topk_hits(logits, labels, 5).cpu().numpy(),
                "agree": (logits.argmax(1) == reference_top1).cpu().numpy(),
                "ce": metrics.cross_entropy_per_image(logits, labels).cpu().numpy(),
                "logit_mse": metrics.logit_mse(logits, reference_logits).cpu().numpy(),
                "psnr": metrics.psnr(image.float(), x.float()).cpu().numpy(),
                "ssim": metrics.ssim(image.float(), x.float()).cpu().numpy(),
            }))
    if skipped:
        print(f"skipped {len(skipped)} unreadable image(s) (data.skip_unreadable is on): {', '.join(skipped[:5])}"
              + (" ..." if len(skipped) > 5 else ""), file=sys.stderr)
    if not any(records.values()) or not records[models[0]]:
        raise ValueError(f"no readable image in the {split} split of profile '{config.profile}'")
    per_image = pd.concat([pd.concat(records[m]) for m in models], ignore_index=True)
    per_image[["top1", "top5", "agree"]] = per_image[["top1", "top5", "agree"]].astype(int)
    per_image[["ce", "logit_mse", "psnr", "ssim"]] = per_image[["ce", "logit_mse", "psnr", "ssim"]].astype("float64")
    n = per_image.groupby("model").size()
    summary = pd.DataFrame({"model": models, "split": split, "judge": config.judge,
                            "n_images": [int(n[m]) for m in models], "skipped": len(skipped),
                            "seconds": [seconds[m] for m in models]})
    summary["images_per_s"] = summary["n_images"] / summary["seconds"].clip(lower=1e-9)
    if not save:
        return EvalRun(per_image, summary)
    return EvalRun(_merge(config, "per_image", per_image, models, merge),
                   _merge(config, "summary", summary, models, merge))


def _merge(config: Config, name: str, frame: pd.DataFrame, models: list[str], merge: bool) -> pd.DataFrame:
    """Write ``frame`` to ``results/<name>.csv``, keeping (with ``merge``) the rows of other models."""
    path = paths.results_dir(config.profile) / f"{name}{suffix(config)}.csv"
    if merge and path.is_file():
        old = pd.read_csv(path, dtype={"image": str, "wnid": str})
        frame = pd.concat([old[~old["model"].isin(models)], frame], ignore_index=True)
    order = {m: i for i, m in enumerate(MODELS)}
    frame = frame.sort_values("model", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)
    fileio.write_csv(frame, path)
    return frame


def read_results(config: Config) -> EvalRun:
    """The per-image and summary results written by :func:`evaluate`."""
    folder = paths.results_dir(config.profile)
    files = [folder / f"{name}{suffix(config)}.csv" for name in ("per_image", "summary")]
    for file in files:
        if not file.is_file():
            raise FileNotFoundError(f"no results at {file}: run notebook 02 (baselines) first")
    return EvalRun(pd.read_csv(files[0], dtype={"image": str, "wnid": str}), pd.read_csv(files[1]))


def table1(config: Config, run: EvalRun) -> pd.DataFrame:
    """Table 1: one row per evaluated model, the report's columns and more."""
    rows = []
    for model, group in run.per_image.groupby("model", sort=False):
        timing = run.summary.set_index("model").loc[model]
        low, high = metrics.bootstrap_interval(group["top1"].to_numpy(), config.eval.bootstrap, seed=config.seed)
        rows.append({
            "row": ROWS[model], "model": model, "name": MODEL_NAMES[model],
            "description": DESCRIPTIONS[model].format(size=config.data.image_size, small=config.small_size,
                                                      sr=config.sr_start),
            "avg_ce": group["ce"].mean(), "avg_psnr": group["psnr"].mean(), "top1": group["top1"].mean(),
            "top1_ci_low": low, "top1_ci_high": high, "top5": group["top5"].mean(),
            "agreement": group["agree"].mean(), "avg_ssim": group["ssim"].mean(),
            "logit_mse": group["logit_mse"].mean(), "n_images": len(group), "skipped": int(timing["skipped"]),
            "seconds": float(timing["seconds"]), "images_per_s": float(timing["images_per_s"]),
        })
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    if config.profile == "paper":
        for i, column in enumerate(("report_avg_ce", "report_avg_psnr", "report_top1", "report_minutes")):
            table[column] = [REPORT_TABLE1.get(m, (np.nan,) * 4)[i] for m in table["model"]]
    return table


def gap_closed(table: pd.DataFrame, reference: str = "bicubic") -> float | None:
    """Share of the top-1 lost to downsampling (original vs ``reference``) that DarioNet recovers."""
    top1 = table.set_index("model")["top1"]
    if not {"original", reference, "darionet"} <= set(top1.index) or top1["original"] == top1[reference]:
        return None
    return float((top1["darionet"] - top1[reference]) / (top1["original"] - top1[reference]))


def mcnemar_tests(run: EvalRun) -> pd.DataFrame:
    """McNemar's test of DarioNet's top-1 hits against each other model's, image by image, in
    Table 1's order; ``baseline`` holds the other model's display name."""
    hits = run.per_image.pivot(index="image", columns="model", values="top1")
    if "darionet" not in hits:
        return pd.DataFrame(columns=["baseline", "b", "c", "statistic", "p_value", "method"])
    rows = [{"baseline": MODEL_NAMES[m], **metrics.mcnemar(hits["darionet"].to_numpy(), hits[m].to_numpy())}
            for m in BASELINES if m in hits]
    return pd.DataFrame(rows)


def table_markdown(config: Config, table: pd.DataFrame, tests: pd.DataFrame, timing: bool = True) -> str:
    """Table 1 as Markdown with its notes (missing rows, skips, gap closed, McNemar)."""
    fmt = metrics.format_metric
    head = ["row", "model", "description", "avg CE", "avg PSNR (dB)", "top-1", "top-1 95% CI", "top-5", "agreement",
            "SSIM"]
    if timing:
        head += ["time (s)", "images/s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in table.itertuples():
        cells = [r.row, r.name, r.description, fmt(r.avg_ce), fmt(r.avg_psnr, 2), fmt(r.top1),
                 f"{fmt(r.top1_ci_low, 3)}-{fmt(r.top1_ci_high, 3)}", fmt(r.top5), fmt(r.agreement), fmt(r.avg_ssim)]
        if timing:
            cells += [f"{r.seconds:.1f}", f"{r.images_per_s:.1f}"]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    n = int(table["n_images"].max())
    notes = [f"Profile `{config.profile}`, split `{config.eval.split}`, {n} images, judged by `{config.judge}` "
             f"(teacher `{config.teacher.name}`), {config.data.image_size} -> {config.small_size} px."]
    skipped = int(table["skipped"].max())
    if skipped:
        notes.append(f"{skipped} unreadable image(s) were skipped (data.skip_unreadable).")
    if "darionet" not in set(table["model"]):
        notes.append("Row 4 (DarioNet) is absent: no fine-tuned checkpoint has been evaluated yet "
                     "(run notebook 03, then notebook 04).")
    closed = gap_closed(table)
    if closed is not None:
        notes.append(f"DarioNet recovers {100 * closed:.1f}% of the top-1 lost to downsampling "
                     "(original vs bicubic; the report: 82% vs bilinear).")
    for t in tests.itertuples():
        notes.append(f"McNemar DarioNet vs {t.baseline}: DarioNet alone right on {t.b}, {t.baseline} alone "
                     f"on {t.c} images; p = {t.p_value:.3g} ({t.method}).")
    if "report_top1" in table:
        notes.append("Report's Table 1 (top-1): " + ", ".join(
            f"{m} {fmt(v)}" for m, v in zip(table["name"], table["report_top1"]) if v == v))
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {note}" for note in notes) + "\n"


def per_class_reports(config: Config, run: EvalRun) -> dict[str, pd.DataFrame]:
    """Per-class precision, recall and F1 of every model (scikit-learn)."""
    names, wnids = imagenet_class_names(), imagenet_wnids()
    return {model: metrics.per_class_report(group["label"].to_numpy(), group["prediction"].to_numpy(), names, wnids)
            for model, group in run.per_image.groupby("model", sort=False)}


def write_tables(config: Config, run: EvalRun) -> dict[str, Path]:
    """Write ``table1.{csv,md}``, ``mcnemar.csv`` and ``per_class_<model>.csv`` to figures/<profile>/."""
    folder = fileio.ensure_dir(paths.figures_dir(config.profile))
    table, tests = table1(config, run), mcnemar_tests(run)
    end = suffix(config)
    written = {"table1_csv": fileio.write_csv(table, folder / f"table1{end}.csv"),
               "table1_md": fileio.write_text(folder / f"table1{end}.md", table_markdown(config, table, tests)),
               "mcnemar": fileio.write_csv(tests, folder / f"mcnemar{end}.csv")}
    for model, report in per_class_reports(config, run).items():
        written[f"per_class_{model}"] = fileio.write_csv(report, folder / f"per_class_{model}{end}.csv")
    return written


@torch.no_grad()
def write_examples(config: Config, run: EvalRun, progress: bool = True) -> Path:
    """Pick one image of each of the ``eval.examples_per_group`` classes with the lowest
    (group ``worse``) and the highest (``better``) per-class F1 difference DarioNet minus
    original, reconstruct them with every model and save ``results/examples.npz`` for
    figures 6 and 7, with each class's F1 on the originals and with DarioNet.

    A group's differences may be of either sign or zero. Within a class the first image
    (by path) where DarioNet and the original disagree in the group's direction is
    preferred, else its first image."""
    reports = per_class_reports(config, run)
    if "darionet" not in reports:
        raise MissingCheckpointError("examples need DarioNet's results: run notebook 04 after notebook 03")
    diff = metrics.class_differences(reports["original"], reports["darionet"])
    k = config.eval.examples_per_group
    groups = {"worse": diff.head(k), "better": diff.tail(k).iloc[::-1]}
    hits = run.per_image.pivot(index="image", columns="model", values="top1")
    chosen = []
    for group, rows in groups.items():
        wanted = 0 if group == "worse" else 1
        for row in rows.itertuples():
            images = sorted(run.per_image.loc[run.per_image["label"] == row.label, "image"].unique())
            fitting = [i for i in images if hits.loc[i, "darionet"] == wanted and hits.loc[i, "original"] != wanted]
            chosen.append((group, row.label, (fitting or images)[0], row.f1_reference, row.f1_model))
    device = setup_torch(config)
    columns = [m for m in MODELS if m in set(run.per_image["model"])]
    nets = load_sr_models(config, columns, device)
    judge = load_judge(config, device)
    dataset = manifest_dataset(config, config.eval.split)
    position = {path: i for i, path in enumerate(dataset.manifest["path"])}
    images, predictions = [], []
    for _, _, image_id, _, _ in tqdm(chosen, desc="examples", disable=not progress_enabled(progress)):
        x = dataset[position[image_id]]["image"][None].to(device)
        small = downsample(x, config.data.scale)
        size = x.shape[-1]
        panels = {"downsampled": torch.nn.functional.interpolate(small, size=size, mode="nearest")}
        panels.update({m: apply_model(m, x, small, nets) for m in columns})
        order = ["original", "downsampled"] + [m for m in columns if m != "original"]
        images.append(np.stack([(panels[m][0].permute(1, 2, 0).clamp(0, 1) * 255).round().byte().cpu().numpy()
                                for m in order]))
        predictions.append(["" if m == "downsampled" else class_names_of([judge(panels[m]).argmax(1).item()])[0]
                            for m in order])
    target = paths.results_dir(config.profile) / "examples.npz"
    with fileio.atomic_path(target) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, images=np.stack(images), columns=np.array(order),
                                group=np.array([c[0] for c in chosen]),
                                class_name=np.array(class_names_of([c[1] for c in chosen])),
                                image=np.array([c[2] for c in chosen]), prediction=np.array(predictions),
                                f1_original=np.array([c[3] for c in chosen]),
                                f1_darionet=np.array([c[4] for c in chosen]))
    return target


def _json_value(value):
    """A table cell as strict JSON: numbers as floats, inf as "inf", NaN as null."""
    if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
        value = float(value)
        if math.isnan(value):
            return None
        return value if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Evaluate the study's models on a split (Table 1).")
    parser.add_argument("--profile", default="demo")
    parser.add_argument("--data-root")
    parser.add_argument("--device", choices=["cpu", "cuda"])
    parser.add_argument("--split", choices=["train", "val", "test"])
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, from {','.join(MODELS)}")
    parser.add_argument("--checkpoint", help="DarioNet checkpoint (default runs/<profile>/checkpoints/darionet_best.pt)")
    parser.add_argument("--judge", help="classifier that judges (default: the teacher)")
    parser.add_argument("--json", help="write per-model metrics (Table 1's columns) to this JSON file")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.profile, {"data_root": args.data_root, "device": args.device,
                                            "eval.judge": args.judge, "eval.split": args.split})
        read_manifest(config.profile, config.eval.split)
        run = evaluate(config, args.models.split(","), checkpoint=args.checkpoint)
        written = write_tables(config, run)
    except (ConfigError, FileNotFoundError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    table = table1(config, run)
    print(Path(written["table1_md"]).read_text())
    if args.json:
        records = {r["model"]: {k: _json_value(v) for k, v in r.items() if k != "model"}
                   for r in table.to_dict("records")}
        fileio.write_text(Path(args.json), json.dumps(records, indent=2, allow_nan=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
