"""k-fold cross-validation of the whole recipe over every image of a sample folder.

Every image is scored once, by a DarioNet that never trained on it. The images are dealt
into ``crossval.folds`` folds (:func:`assign_folds`, seeded by ``crossval.seed``). Fold *i*'s
DarioNet trains on the other folds less a validation share (:func:`fold_splits`: the
profile's ``val / (train + val)``), whose images alone pick its epoch, exactly as notebook 03
trains on the profile's split; it is then scored on fold *i* by the teacher and by the unseen
judges ``crossval.judges`` (every model of Table 1, each image made once).

The frozen head does not depend on the split: its output for every image and its mirror is
computed once (``runs/<p>-crossval/cache/``) and each fold reads its rows. Fold *i* runs as the
profile ``<p>-crossval-fold<i>`` under ``runs/`` (manifests, checkpoints, history); a killed
fold resumes from its last epoch.

Published as each fold finishes, so the estimate can be completed over several sittings
(``figures/<p>/crossval/``): ``folds.csv`` (every image's fold and role), ``fold<i>/``
(``per_image.csv``, ``summary.csv``, ``history.csv``, Table 1 under the teacher) and the pooled
out-of-fold estimate over the folds done so far (:func:`pooled_estimate`, ``crossval.{csv,md}``).
Where ``crossval.compare_with`` names another cross-validated profile (the same folds), its DarioNet
and this one's are compared image by image on the folds both have done (:func:`paired_comparison`,
``versus_<other>.csv``). Every fold's scoring is logged (:mod:`dario_utils.evaluation.scorings`).

    python -m dario_utils.evaluation.crossval --profile imagenet-sample --data-root DIR [--folds 1,2]
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from dario_utils.core import distributed, fileio, metrics, paths, result_files
from dario_utils.core.config import check_config, Config, ConfigError, load_config, with_overrides
from dario_utils.core.result_files import EvalRun
from dario_utils.core.runtime import setup_torch
from dario_utils.data.dataset import DataError, read_manifest, resolve_data_root, split_sample_folder, write_manifests
from dario_utils.evaluation import scorings, tables
from dario_utils.evaluation.evaluate import evaluate
from dario_utils.models import build_student
from dario_utils.models.study_models import BICUBIC, BILINEAR, DARIONET, display_name, MODELS, ORIGINAL, PRETRAINED_SR
from dario_utils.training.head_cache import head_features, HeadFeatures
from dario_utils.training.loop import TrainingError
from dario_utils.training.losses import check_loss
from dario_utils.training.train import finetune

POOL = "all"
"""The manifest of every image, whose head features every fold reads."""
REFERENCES = (BICUBIC, BILINEAR)
"""The baselines the gap is measured against: ours (bicubic) and the report's (bilinear)."""


def pool_config(config: Config) -> Config:
    """The profile under which every image's manifest and head cache live (``<p>-crossval``)."""
    return with_overrides(config, {"profile": f"{config.profile}-crossval"})


def fold_config(config: Config, fold: int) -> Config:
    """The profile fold ``fold`` trains and is scored under (``<p>-crossval-fold<i>``)."""
    return with_overrides(config, {"profile": f"{config.profile}-crossval-fold{fold}", "eval.split": "test"})


def assign_folds(images: Sequence[str], folds: int, seed: int) -> pd.Series:
    """Each image's fold, 1 to ``folds``: the images, sorted then shuffled by ``seed``, dealt in turn
    (fold sizes differ by at most one)."""
    order = sorted(images)
    random.Random(seed).shuffle(order)
    return pd.Series({image: position % folds + 1 for position, image in enumerate(order)}).loc[sorted(images)]


def fold_splits(fold_of: pd.Series, fold: int, val_share: float, seed: int) -> dict[str, list[str]]:
    """Fold ``fold``'s split: its images are the test split; of the others, a seeded ``val_share``
    is the validation split and the rest the training split (each sorted)."""
    pool = sorted(fold_of.index[fold_of != fold])
    random.Random(seed * 1000 + fold).shuffle(pool)
    n_val = round(len(pool) * val_share)
    return {"train": sorted(pool[n_val:]), "val": sorted(pool[:n_val]),
            "test": sorted(fold_of.index[fold_of == fold])}


def validation_share(config: Config) -> float:
    """The profile's validation share of the images a model learns from: val / (train + val)."""
    fractions = config.data.fractions
    return fractions["val"] / (fractions["train"] + fractions["val"])


def prepare(config: Config, progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Write the pool's manifest and every fold's manifests; return the pool's manifest and the
    table of folds (``image``, ``wnid``, ``fold``, and per fold the image's ``role_in_fold<i>``)."""
    if config.data.kind != "sample_folder":
        raise DataError(f"cross-validation deals a sample folder's images into folds; data.kind is "
                        f"'{config.data.kind}'")
    root = resolve_data_root(config)
    every = pd.DataFrame(split_sample_folder(root, {"train": 1.0, "val": 0.0, "test": 0.0},
                                             config.data.split_seed, progress=progress)["train"])
    write_manifests(pool_config(config), {POOL: every})
    fold_of = assign_folds(every["path"], config.crossval.folds, config.crossval.seed)
    table = every[["path", "wnid"]].rename(columns={"path": "image"}).assign(fold=fold_of.loc[every["path"]].to_numpy())
    by_path = every.set_index("path", drop=False)
    for fold in range(1, config.crossval.folds + 1):
        splits = fold_splits(fold_of, fold, validation_share(config), config.crossval.seed)
        write_manifests(fold_config(config, fold),
                        {split: by_path.loc[images].reset_index(drop=True) for split, images in splits.items()})
        role = {image: split for split, images in splits.items() for image in images}
        table[f"role_in_fold{fold}"] = table["image"].map(role)
    return every, table


def pool_heads(config: Config, device: torch.device, progress: bool) -> tuple[HeadFeatures, HeadFeatures | None]:
    """The frozen head's output for every image, and for its mirror where the recipe trains on mirrors
    (computed once, then read from ``runs/<p>-crossval/cache/``)."""
    net = build_student(config, device)
    pool = pool_config(config)
    heads = head_features(pool, POOL, net, device, progress)
    mirrored = head_features(pool, POOL, net, device, progress, flipped=True) if config.train.flipped_copies else None
    return heads, mirrored


def fold_heads(config: Config, fold: int, pool: pd.DataFrame, heads: HeadFeatures,
               mirrored: HeadFeatures | None) -> dict[str, HeadFeatures]:
    """Fold ``fold``'s rows of the pool's head features, in its manifests' order (the training
    split followed by its mirrors, as :func:`dario_utils.data.dataset.training_set` reads it)."""
    row_of = {path: i for i, path in enumerate(pool["path"])}
    layout = fold_config(config, fold).layout
    rows = {split: [row_of[p] for p in read_manifest(layout, split)[0]["path"]] for split in ("train", "val", "test")}
    selected = {split: heads.rows(indices) for split, indices in rows.items()}
    if mirrored is not None:
        selected["train"] = selected["train"].followed_by(mirrored.rows(rows["train"]))
    return selected


def run_fold(config: Config, fold: int, pool: pd.DataFrame, heads: HeadFeatures, mirrored: HeadFeatures | None,
             progress: bool = True) -> EvalRun:
    """Train fold ``fold``'s DarioNet (resuming a killed run), score its test images under every
    judge, log the scoring and publish the fold (:func:`publish_fold`)."""
    config_k = fold_config(config, fold)
    selected = fold_heads(config, fold, pool, heads, mirrored)
    start = time.perf_counter()
    history = finetune(config_k, resume=True, progress=progress, label=f"fold {fold}", heads=selected)
    trained = time.perf_counter() - start
    judges = [config.judge, *config.crossval.judges]
    run = evaluate(config_k, list(MODELS), progress=progress, save=False, judges=judges, heads=selected["test"])
    run.per_image.insert(0, "fold", fold)
    run.summary.insert(0, "fold", fold)
    run.summary["train_seconds"] = trained
    for judge, rows in run.per_image.groupby("judge", sort=False):
        darionet = rows[rows["model"] == DARIONET]
        scorings.log_scoring(config, str(fold), judge, len(darionet), float(darionet["top1"].mean()),
                             *(gap_of_rows(rows, reference) for reference in REFERENCES))
    publish_fold(config, fold, run, history)
    return run


def publish_fold(config: Config, fold: int, run: EvalRun, history: pd.DataFrame) -> Path:
    """Write fold ``fold``'s results to ``figures/<p>/crossval/fold<i>/`` and refresh the pooled estimate."""
    folder = fileio.ensure_dir(config.layout.crossval / f"fold{fold}")
    fileio.write_csv(run.per_image, folder / "per_image.csv")
    fileio.write_csv(run.summary, folder / "summary.csv")
    fileio.write_csv(history, folder / paths.HISTORY_FILE)
    teacher = judged_by(run, config.judge)
    config_k = fold_config(config, fold)
    table = tables.table1(config_k, teacher)
    fileio.write_csv(table, folder / "table1.csv")
    fileio.write_text(folder / "table1.md", tables.table_markdown(config_k, table, tables.mcnemar_tests(teacher),
                                                                 run=teacher))
    write_pooled(config)
    return folder


def judged_by(run: EvalRun, judge: str) -> EvalRun:
    """The rows of ``run`` judged by ``judge``."""
    return EvalRun(run.per_image[run.per_image["judge"] == judge].reset_index(drop=True),
                   run.summary[run.summary["judge"] == judge].reset_index(drop=True))


def gap_of_rows(per_image: pd.DataFrame, reference: str) -> float | None:
    """Share of the top-1 gap between the originals and ``reference`` that DarioNet recovers on these rows."""
    top1 = per_image.groupby("model")["top1"].mean()
    return tables.gap_closed(top1.rename_axis("model").reset_index(), reference)


def pooled_estimate(config: Config, per_image: pd.DataFrame) -> pd.DataFrame:
    """The out-of-fold estimate over the folds in ``per_image``: one row per judge with every
    model's top-1, the gap DarioNet recovers against bicubic and against bilinear with their 95%
    bootstrap intervals over the images, McNemar's counts against bicubic and against its start
    (the pretrained SR), and the share of the teacher's gain (DarioNet minus its start) that holds
    under the judge."""
    rows = []
    for judge, judged in per_image.groupby("judge", sort=False):
        hits = judged.pivot(index="image", columns="model", values="top1")
        row: dict[str, object] = {"judge": judge, "role": "teacher" if judge == config.judge else "unseen judge",
                                  "folds": judged["fold"].nunique(), "n_images": len(hits)}
        row.update({f"top1_{model}": hits[model].mean() for model in MODELS})
        for reference in REFERENCES:
            columns = hits[[ORIGINAL, reference, DARIONET]].to_numpy()
            row[f"gap_vs_{reference}"] = tables.share_of_gap(*columns.sum(axis=0))
            row[f"gap_vs_{reference}_low"], row[f"gap_vs_{reference}_high"] = metrics.bootstrap_interval(
                columns, config.eval.bootstrap, seed=config.seed, statistic=lambda r: tables.share_of_gap(*r.sum(axis=0)))
        for other, name in ((BICUBIC, "bicubic"), (PRETRAINED_SR, "start")):
            test = metrics.mcnemar(hits[DARIONET].to_numpy(), hits[other].to_numpy())
            row[f"mcnemar_{name}_darionet_only"], row[f"mcnemar_{name}_other_only"] = test["b"], test["c"]
            row[f"mcnemar_{name}_p"] = test["p_value"]
        row["gain_over_start"] = row["top1_darionet"] - row["top1_esrgan"]
        rows.append(row)
    pooled = pd.DataFrame(rows)
    teacher_gain = pooled.loc[pooled["role"] == "teacher", "gain_over_start"].iloc[0]
    pooled["share_of_teacher_gain"] = pooled["gain_over_start"] / teacher_gain if teacher_gain else np.nan
    return pooled


def fold_table(config: Config, per_image: pd.DataFrame, histories: dict[int, pd.DataFrame]) -> pd.DataFrame:
    """One row per fold done: its images, its best epoch and validation loss, and under the teacher
    the top-1 of the originals, bicubic, bilinear and DarioNet and the gaps."""
    rows = []
    for fold, rows_k in per_image[per_image["judge"] == config.judge].groupby("fold"):
        best = result_files.best_epoch_row(histories[fold])
        top1 = rows_k.groupby("model")["top1"].mean()
        rows.append({"fold": fold, "n_images": rows_k["image"].nunique(), "best_epoch": int(best["epoch"]),
                     "val_loss": best["val_loss"], **{f"top1_{m}": top1[m] for m in MODELS},
                     **{f"gap_vs_{r}": gap_of_rows(rows_k, r) for r in REFERENCES}})
    return pd.DataFrame(rows)


def read_folds(config: Config) -> tuple[pd.DataFrame, dict[int, pd.DataFrame]]:
    """The published per-image results and histories of the folds done so far."""
    folder = config.layout.crossval
    done = sorted(int(p.name[4:]) for p in folder.glob("fold*") if (p / "per_image.csv").is_file())
    per_image = pd.concat([pd.read_csv(folder / f"fold{k}" / "per_image.csv", dtype={"image": str, "wnid": str})
                           for k in done], ignore_index=True) if done else pd.DataFrame()
    return per_image, {k: pd.read_csv(folder / f"fold{k}" / paths.HISTORY_FILE) for k in done}


def paired_comparison(config: Config, per_image: pd.DataFrame, other: pd.DataFrame) -> pd.DataFrame:
    """This profile's DarioNet against another's (``other``: its per-image results) on the images both
    scored, under every judge both used: each one's top-1 and gap against bicubic (each with its own
    references), the difference of the gaps (this minus the other) with its 95% bootstrap interval over
    the images (resampled in pairs), and McNemar's counts (this alone right : the other alone right)."""
    rows = []
    for judge, judged in per_image.groupby("judge", sort=False):
        theirs = other[other["judge"] == judge]
        if theirs.empty:
            continue
        ours = judged.pivot(index="image", columns="model", values="top1")
        theirs = theirs.pivot(index="image", columns="model", values="top1")
        common = ours.index.intersection(theirs.index).sort_values()
        ours, theirs = ours.loc[common], theirs.loc[common]
        columns = np.column_stack([frame[model].to_numpy() for frame in (ours, theirs)
                                   for model in (ORIGINAL, BICUBIC, DARIONET)])

        def difference(resample: np.ndarray) -> float:
            totals = resample.sum(axis=0)
            return tables.share_of_gap(*totals[:3]) - tables.share_of_gap(*totals[3:])

        low, high = metrics.bootstrap_interval(columns, config.eval.bootstrap, seed=config.seed, statistic=difference)
        test = metrics.mcnemar(ours[DARIONET].to_numpy(), theirs[DARIONET].to_numpy())
        folds = sorted(judged.loc[judged["image"].isin(common), "fold"].unique())
        rows.append({"judge": judge, "role": "teacher" if judge == config.judge else "unseen judge",
                     "folds": ",".join(str(k) for k in folds), "n_images": len(common),
                     "top1_darionet": ours[DARIONET].mean(), "top1_darionet_other": theirs[DARIONET].mean(),
                     "gap_vs_bicubic": tables.share_of_gap(*columns[:, :3].sum(axis=0)),
                     "gap_vs_bicubic_other": tables.share_of_gap(*columns[:, 3:].sum(axis=0)),
                     "gap_difference": difference(columns), "gap_difference_low": low, "gap_difference_high": high,
                     "mcnemar_this_only": test["b"], "mcnemar_other_only": test["c"], "mcnemar_p": test["p_value"]})
    return pd.DataFrame(rows)


def compared_profile(config: Config) -> Config | None:
    """The profile named by ``crossval.compare_with`` (same output root), or None."""
    name = config.crossval.compare_with
    return None if name is None else load_config(name, output_root=config.layout.output_root)


def versus_file(config: Config) -> Path:
    """``figures/<p>/crossval/versus_<other>.csv``: :func:`paired_comparison` with ``crossval.compare_with``."""
    return config.layout.crossval / f"versus_{config.crossval.compare_with}.csv"


def write_pooled(config: Config) -> Path:
    """``crossval.csv`` (pooled, one row per judge), ``crossval_folds.csv``, the comparison with
    ``crossval.compare_with`` where set and its folds are published, and ``crossval.md``, over the folds done."""
    folder = config.layout.crossval
    per_image, histories = read_folds(config)
    pooled, folds = pooled_estimate(config, per_image), fold_table(config, per_image, histories)
    fileio.write_csv(pooled, folder / "crossval.csv")
    fileio.write_csv(folds, folder / "crossval_folds.csv")
    other = compared_profile(config)
    other_per_image = read_folds(other)[0] if other is not None else pd.DataFrame()
    versus = paired_comparison(config, per_image, other_per_image) if len(other_per_image) else None
    if versus is not None:
        fileio.write_csv(versus, versus_file(config))
    return fileio.write_text(folder / "crossval.md", crossval_markdown(config, pooled, folds, versus))


def crossval_markdown(config: Config, pooled: pd.DataFrame, folds: pd.DataFrame,
                      versus: pd.DataFrame | None = None) -> str:
    """The pooled estimate, the folds and the comparison ``versus`` (where given) as Markdown, saying how
    many folds and images stand behind each."""
    k, done = config.crossval.folds, len(folds)
    status = ("all folds done" if done == k else
              f"**partial: {done} of {k} folds done**; the estimate covers only their images")
    lines = [f"Cross-validation of profile `{config.profile}` (recipe `{scorings.recipe_hash(config)}`), "
             f"{k} folds seeded {config.crossval.seed}: {status}. Each image is scored once, by the DarioNet "
             f"of the fold that left it out; its epoch was picked on that fold's validation images.", ""]
    cells = []
    for r in pooled.itertuples():
        cells.append({"judge": f"{r.judge} ({r.role})", "images": r.n_images,
                      **{f"top-1 {display_name(m)}": f"{getattr(r, f'top1_{m}'):.3f}" for m in MODELS},
                      **{f"gap vs {ref}": f"{100 * getattr(r, f'gap_vs_{ref}'):.1f}% "
                                          f"({100 * getattr(r, f'gap_vs_{ref}_low'):.1f}-"
                                          f"{100 * getattr(r, f'gap_vs_{ref}_high'):.1f})" for ref in REFERENCES},
                      "McNemar vs bicubic": f"{r.mcnemar_bicubic_darionet_only}:{r.mcnemar_bicubic_other_only} "
                                            f"(p = {r.mcnemar_bicubic_p:.2g})",
                      "McNemar vs start": f"{r.mcnemar_start_darionet_only}:{r.mcnemar_start_other_only} "
                                          f"(p = {r.mcnemar_start_p:.2g})",
                      "share of the teacher's gain": f"{100 * r.share_of_teacher_gain:.0f}%"})
    lines += [tables.markdown_table(pd.DataFrame(cells, dtype=object)), "Per fold, judged by the teacher:", "",
              tables.markdown_table(folds)]
    lines.append("Gaps are DarioNet's share of the top-1 lost to downsampling (original vs the baseline), with 95% "
                 "bootstrap intervals over the images; McNemar counts are images DarioNet alone gets right : the other "
                 "model alone; the share of the teacher's gain is DarioNet's top-1 gain over its start (the pretrained "
                 "SR) under the judge, divided by that gain under the teacher.")
    if versus is not None:
        lines += ["", f"Against `{config.crossval.compare_with}` on the same images (the folds both have done):", "",
                  tables.markdown_table(versus_markdown_frame(versus, config.crossval.compare_with))]
    return "\n".join(lines) + "\n"


def versus_markdown_frame(versus: pd.DataFrame, other: str) -> pd.DataFrame:
    """:func:`paired_comparison`'s rows as the crossval page and the docs print them."""
    return pd.DataFrame([{"judge": f"{r.judge} ({r.role})", "folds": r.folds, "images": r.n_images,
                          f"top-1 `{other}`": f"{r.top1_darionet_other:.3f}", "top-1 this": f"{r.top1_darionet:.3f}",
                          f"gap vs bicubic `{other}`": f"{100 * r.gap_vs_bicubic_other:.1f}%",
                          "gap vs bicubic this": f"{100 * r.gap_vs_bicubic:.1f}%",
                          "difference (95% interval)": f"{100 * r.gap_difference:+.1f} points "
                                                       f"({100 * r.gap_difference_low:+.1f} to "
                                                       f"{100 * r.gap_difference_high:+.1f})",
                          "McNemar this alone : other alone": f"{r.mcnemar_this_only}:{r.mcnemar_other_only} "
                                                              f"(p = {r.mcnemar_p:.2g})"}
                         for r in versus.itertuples()], dtype=object)


def cross_validate(config: Config, only: Sequence[int] | None = None, progress: bool = True) -> pd.DataFrame:
    """Run the folds ``only`` (default: every fold not yet published) and return the pooled estimate."""
    check_config(config)
    check_loss(config.train)
    folds = list(only or range(1, config.crossval.folds + 1))
    wrong = [k for k in folds if not 1 <= k <= config.crossval.folds]
    if wrong:
        raise ConfigError(f"fold(s) {wrong} do not exist: crossval.folds is {config.crossval.folds}")
    if config.train.frozen_blocks is None:
        raise ConfigError("cross-validation reuses the frozen head's output: set train.frozen_blocks")
    device = setup_torch(config)
    pool, table = prepare(config, progress)
    folder = fileio.ensure_dir(config.layout.crossval)
    fileio.write_csv(table, folder / "folds.csv")
    heads, mirrored = pool_heads(config, device, progress)
    for fold in folds:
        if (folder / f"fold{fold}" / "per_image.csv").is_file() and only is None:
            print(f"fold {fold}: already published in {folder / f'fold{fold}'}; skipped (pass --folds {fold} "
                  "to score it again)")
            continue
        run_fold(config, fold, pool, heads, mirrored, progress)
        print(f"fold {fold} done: {folder / f'fold{fold}'}", flush=True)
    return pd.read_csv(folder / "crossval.csv")


def main(argv: Sequence[str] | None = None) -> int:
    """Command line; 2 on bad input."""
    parser = argparse.ArgumentParser(prog="python -m dario_utils.evaluation.crossval", description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="imagenet-sample", help="profile name or YAML file")
    parser.add_argument("--data-root", help="data folder (overrides the profile's data_root)")
    parser.add_argument("--device", choices=("cpu", "cuda"), help="overrides the profile's device")
    parser.add_argument("--folds", help="comma-separated folds to run (default: every fold not yet published)")
    parser.add_argument("--no-progress", action="store_false", dest="progress", help="draw no progress bars")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.profile, {"data_root": args.data_root, "device": args.device},
                             output_root=paths.output_root_from_env())
        only = [int(k) for k in args.folds.split(",")] if args.folds else None
        with distributed.process_group(config.device):
            pooled = cross_validate(config, only, progress=args.progress)
    except (ValueError, OSError, RuntimeError, TrainingError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(pooled.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
