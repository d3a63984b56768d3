"""Scoring every model on a split: per-image metrics, the example reconstructions, the CLI.

One batched pass: the judge's logits on each original are computed once and every model
of :data:`dario_utils.models.study_models.MODELS` (``esrgan`` is the profile's pretrained SR net)
is scored against them. Results accumulate in ``runs/<profile>/results/per_image.csv``
(one row per image and model) and ``summary.csv`` (time per model), so notebook 02 can
score the baselines and notebook 04 add DarioNet. The tables computed from them
(:mod:`dario_utils.evaluation.tables`) go to the run's figures folder ``runs/<profile>/figures/``, which the
runner publishes as ``figures/<profile>/``; the CLI writes them there too (and publishes nothing).

    python -m dario_utils.evaluation.evaluate --profile demo --models original,bicubic,darionet --json out.json
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from dario_utils.core import fileio, metrics, paths, result_files
from dario_utils.core.config import check_config, Config, ConfigError, load_config
from dario_utils.core.result_files import EvalRun
from dario_utils.core.runtime import setup_torch
from dario_utils.data.dataset import class_names_of, collate, manifest_dataset, read_manifest
from dario_utils.data.degrade import downsample
from dario_utils.evaluation import tables
from dario_utils.models import build_student, load_sr, study_models, teacher_of
from dario_utils.models.study_models import DARIONET, ORIGINAL
from dario_utils.training.head_cache import head_features, head_fingerprint, HeadFeatures, reconstruct_from_head, Tail
from dario_utils.training.losses import check_loss


class MissingCheckpointError(FileNotFoundError):
    """DarioNet has not been trained for this profile yet."""


def darionet_checkpoint(config: Config) -> Path:
    """``runs/<p>/checkpoints/darionet_best.pt``: the fine-tuned DarioNet (notebook 03)."""
    return config.layout.best_checkpoint


def load_sr_models(config: Config, models: list[str], device: torch.device,
                   checkpoint: str | None = None) -> dict[str, nn.Module]:
    """The SR networks among ``models``, in eval mode, by their :attr:`~StudyModel.sr_weights`: the profile's
    pretrained SR net, and DarioNet's fine-tuned checkpoint (``checkpoint``, default :func:`darionet_checkpoint`)."""
    nets = {}
    for model in study_models.STUDY_MODELS:
        if model.key not in models or model.sr_weights is None:
            continue
        if model.sr_weights == study_models.PRETRAINED:
            nets[model.key] = build_student(config, device)
            continue
        path = Path(checkpoint) if checkpoint else darionet_checkpoint(config)
        if not path.is_file():
            raise MissingCheckpointError(
                f"no DarioNet checkpoint at {path}: run notebook 03 (python -m dario_utils.runner.reproduce "
                f"--profile {config.profile} --only 03) or pass --checkpoint FILE")
        nets[model.key] = load_sr(path, device=device)
    for net in nets.values():
        net.eval()
    return nets


def load_judge(config: Config, device: torch.device, name: str | None = None) -> nn.Module:
    """The classifier ``name`` that evaluates (default ``config.judge``: the teacher, with its
    weights, unless ``eval.judge`` names another)."""
    return teacher_of(config, device, name or config.judge)


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
            image = study_models.BY_KEY[model].image(x, source, nets)
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


@torch.no_grad()
def evaluate(config: Config, models: list[str] | None = None, checkpoint: str | Path | None = None,
             progress: bool = True, merge: bool = True, save: bool = True,
             judges: Sequence[str] | None = None, heads: HeadFeatures | None = None) -> EvalRun:
    """Score ``models`` on the split ``config.eval.split`` and write the profile's result files
    (:func:`dario_utils.core.result_files.eval_results_path`): with ``merge`` their rows replace those
    of the same models and the other models' rows are kept; without it (notebook 02, a new baseline run) the files hold
    only these models, so no result of an earlier run survives. Without ``save`` nothing is
    written (notebook 06 scores variants of the study's models and keeps its own files).

    ``judges`` (default ``[config.judge]``) each classify every model's image, made once: one
    row per image, model and judge, and one summary row per model and judge (its time is the
    image's plus that judge's). Several judges need ``save=False``. With a frozen head,
    ``heads`` may give the split's cached head features (rows in manifest order, computed once
    for several runs, as :mod:`dario_utils.evaluation.crossval` does); every frozen-head net must then
    share the head they were computed with."""
    check_config(config)
    check_loss(config.train)  # a profile that cannot train is refused at its first scoring too
    judges = list(judges or [config.judge])
    if len(judges) > 1 and save:
        raise ValueError("scoring with several judges writes no result files: pass save=False")
    models = list(models or study_models.MODELS)
    unknown = set(models) - set(study_models.MODELS)
    if unknown:
        raise ConfigError(f"unknown model(s) {', '.join(sorted(unknown))}: "
                          f"choose from {', '.join(study_models.MODELS)}")
    split = config.eval.split
    device = setup_torch(config)
    dataset = manifest_dataset(config, split)
    if save:  # an output folder that cannot be written fails now, not after the scoring
        fileio.check_writable(config.layout.results)
    loader = DataLoader(dataset, batch_size=config.eval.batch_size, shuffle=False, collate_fn=collate,
                        num_workers=config.data.num_workers)
    classifiers = {name: load_judge(config, device, name) for name in judges}
    nets = load_sr_models(config, models, device, checkpoint)
    blocks = config.train.frozen_blocks  # frozen-head nets run their tails on the head's cached output
    if blocks is None:
        heads_of: dict[str, HeadFeatures] = {}
    elif heads is not None:
        if len({head_fingerprint(net, blocks) for net in nets.values()}) > 1:
            raise ValueError("the given head features fit one head, but the SR nets' frozen heads differ")
        heads_of = {m: heads for m in nets}
    else:
        heads_of = _shared_heads(config, split, nets, blocks, device, progress)
    tails = {m: Tail(nets[m], blocks) for m in heads_of}
    for net in nets.values():  # channels-last convolutions: faster on CUDA and CPU
        net.to(memory_format=torch.channels_last)
    if device.type == "cuda":  # a first untimed pass pays CUDA's start-up costs
        _warm_up(config, models, nets, heads_of, classifiers[judges[0]], device,
                 min(config.eval.batch_size, len(dataset)))
    manifest = dataset.manifest
    records: list[pd.DataFrame] = []
    seconds = {(m, j): heads_of[m].seconds if m in heads_of else 0.0 for m in models for j in judges}
    skipped: list[str] = []
    bar = tqdm(loader, desc=f"evaluate {split}", unit="batch", disable=not progress)
    for batch in bar:
        skipped += batch["skipped"]
        if "image" not in batch:
            continue
        x = batch["image"].to(device)
        labels = batch["label"].to(device)
        rows = manifest.iloc[batch["index"].tolist()]
        start = time.perf_counter()
        small = downsample(x, config.data.scale)
        shared = time.perf_counter() - start
        references = {}
        for name, judge in classifiers.items():
            start = time.perf_counter()
            references[name] = judge(x)
            if ORIGINAL in models:
                seconds[ORIGINAL, name] += shared + time.perf_counter() - start
        sr_input = small.contiguous(memory_format=torch.channels_last)
        for model in models:
            start = time.perf_counter()
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
                image = (x if model == ORIGINAL else
                         reconstruct_from_head(tails[model], heads_of[model].select(batch["index"], device),
                                               x.shape[-1]) if model in heads_of else
                         study_models.BY_KEY[model].image(x, sr_input if model in nets else small, nets))
            made = time.perf_counter() - start
            for name, judge in classifiers.items():
                start = time.perf_counter()
                # the judge sees every image in float32, as the originals (bf16 slows the classifier alone)
                logits = (judge(image.float()) if model != ORIGINAL else references[name]).float()
                if device.type == "cuda":
                    torch.cuda.synchronize()
                if model != ORIGINAL:
                    seconds[model, name] += made + time.perf_counter() - start
                records.append(pd.DataFrame({
                    "image": rows["path"].to_numpy(), "wnid": rows["wnid"].to_numpy(),
                    "label": labels.cpu().numpy(), "model": model, "judge": name,
                    "prediction": logits.argmax(1).cpu().numpy(),
                    "top1": metrics.topk_hits(logits, labels, 1).cpu().numpy(),
                    "top5": metrics.topk_hits(logits, labels, 5).cpu().numpy(),
                    "agree": (logits.argmax(1) == references[name].argmax(1)).cpu().numpy(),
                    "ce": metrics.cross_entropy_per_image(logits, labels).cpu().numpy(),
                    "logit_mse": metrics.logit_mse(logits, references[name]).cpu().numpy(),
                    "psnr": metrics.psnr(image.float(), x.float()).cpu().numpy(),
                    "ssim": metrics.ssim(image.float(), x.float()).cpu().numpy(),
                }))
    if skipped:
        print(f"skipped {len(skipped)} unreadable image(s) (data.skip_unreadable is on): {', '.join(skipped[:5])}"
              + (" ..." if len(skipped) > 5 else ""), file=sys.stderr)
    if not records:
        raise ValueError(f"no readable image in the {split} split of profile '{config.profile}'")
    pairs = [(m, j) for m in models for j in judges]
    per_image = pd.concat(records, ignore_index=True)  # batch by batch: put each model's and judge's rows together
    per_image = per_image.sort_values(["model", "judge"], kind="stable", key=lambda column: column.map(
        {name: i for i, name in enumerate(models if column.name == "model" else judges)})).reset_index(drop=True)
    per_image[["top1", "top5", "agree"]] = per_image[["top1", "top5", "agree"]].astype(int)
    per_image[["ce", "logit_mse", "psnr", "ssim"]] = per_image[["ce", "logit_mse", "psnr", "ssim"]].astype("float64")
    n = per_image.groupby(["model", "judge"]).size()
    summary = pd.DataFrame({"model": [m for m, _ in pairs], "split": split, "judge": [j for _, j in pairs],
                            "n_images": [int(n[pair]) for pair in pairs], "skipped": len(skipped),
                            "seconds": [seconds[pair] for pair in pairs]})
    summary["images_per_s"] = summary["n_images"] / summary["seconds"].clip(lower=1e-9)
    if not save:
        return EvalRun(per_image, summary)
    return EvalRun(_merge(config, "per_image", per_image, models, merge),
                   _merge(config, "summary", summary, models, merge))


def _merge(config: Config, name: str, frame: pd.DataFrame, models: list[str], merge: bool) -> pd.DataFrame:
    """Write ``frame`` to ``results/<name>.csv``, keeping (with ``merge``) the rows of other models."""
    path = result_files.eval_results_path(config, name)
    if merge and path.is_file():
        old = pd.read_csv(path, dtype={"image": str, "wnid": str})
        frame = pd.concat([old[~old["model"].isin(models)], frame], ignore_index=True)
    order = {m: i for i, m in enumerate(study_models.MODELS)}
    frame = frame.sort_values("model", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)
    fileio.write_csv(frame, path)
    return frame


@torch.no_grad()
def write_examples(config: Config, run: EvalRun, progress: bool = True) -> Path:
    """Reconstruct the images of :func:`dario_utils.evaluation.tables.choose_examples` with every model of
    ``run`` and save ``results/examples.npz`` for figures 6 and 7: the images (the downsampled
    one brought back to full size by nearest neighbour), the judge's predictions and each
    class's F1 on the originals and with DarioNet."""
    if DARIONET not in set(run.per_image["model"]):
        raise MissingCheckpointError("examples need DarioNet's results: run notebook 04 after notebook 03")
    chosen = tables.choose_examples(config, run)
    device = setup_torch(config)
    columns = [m for m in study_models.MODELS if m in set(run.per_image["model"])]
    nets = load_sr_models(config, columns, device)
    judge = load_judge(config, device)
    dataset = manifest_dataset(config, config.eval.split)
    position = {path: i for i, path in enumerate(dataset.manifest["path"])}
    images, predictions = [], []
    for example in tqdm(chosen, desc="examples", disable=not progress):
        x = dataset[position[example.image]]["image"][None].to(device)
        small = downsample(x, config.data.scale)
        size = x.shape[-1]
        panels = {"downsampled": torch.nn.functional.interpolate(small, size=size, mode="nearest")}
        panels.update({m: study_models.BY_KEY[m].image(x, small, nets) for m in columns})
        order = [ORIGINAL, "downsampled"] + [m for m in columns if m != ORIGINAL]
        images.append(np.stack([(panels[m][0].permute(1, 2, 0).clamp(0, 1) * 255).round().byte().cpu().numpy()
                                for m in order]))
        predictions.append(["" if m == "downsampled" else class_names_of([judge(panels[m]).argmax(1).item()])[0]
                            for m in order])
    target = config.layout.examples
    with fileio.atomic_path(target) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, images=np.stack(images), columns=np.array(order),
                                group=np.array([e.group for e in chosen]),
                                class_name=np.array(class_names_of([e.label for e in chosen])),
                                image=np.array([e.image for e in chosen]), prediction=np.array(predictions),
                                f1_original=np.array([e.f1_original for e in chosen]),
                                f1_darionet=np.array([e.f1_darionet for e in chosen]))
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
    every = ",".join(study_models.MODELS)
    parser.add_argument("--models", default=every, help=f"comma-separated, from {every}")
    parser.add_argument("--checkpoint", help="DarioNet checkpoint (default runs/<profile>/checkpoints/darionet_best.pt)")
    parser.add_argument("--judge", help="classifier that judges (default: the teacher)")
    parser.add_argument("--json", help="write per-model metrics (Table 1's columns) to this JSON file")
    parser.add_argument("--no-progress", action="store_false", dest="progress", help="draw no progress bars")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.profile, {"data_root": args.data_root, "device": args.device,
                                            "eval.judge": args.judge, "eval.split": args.split},
                             output_root=paths.output_root_from_env())
        read_manifest(config.layout, config.eval.split)
        for folder in (config.layout.results, config.layout.figures):
            fileio.check_writable(folder)  # before any work: the results and tables are written there
        run = evaluate(config, args.models.split(","), checkpoint=args.checkpoint, progress=args.progress)
        written = tables.write_tables(config, run)
    except (ConfigError, FileNotFoundError, ValueError, OSError, fileio.OutputNotWritableError) as err:
        # config, device, data, checkpoint, teacher weights and output folder errors
        print(f"error: {err}", file=sys.stderr)
        return 2
    table = tables.table1(config, run)
    print(Path(written["table1_md"]).read_text())
    if args.json:
        records = {r["model"]: {k: _json_value(v) for k, v in r.items() if k != "model"}
                   for r in table.to_dict("records")}
        fileio.write_text(Path(args.json), json.dumps(records, indent=2, allow_nan=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
