"""The other route: fine-tune the classifier for small images instead of the SR net (notebook 07).

The study's loss needs no labels, so it can teach a copy of the classifier just as it teaches
the SR net: the frozen teacher's logits on each original are the target of the copy's logits on
the bicubic upscaling of its downsampled image (the FixRes / RS-Nets route, by distillation).
The copy trains on the same images, for the same epochs and with the same seed and batch size
as DarioNet; its batch-norm statistics stay frozen (it runs in eval mode, as the teacher), so
only its weights move. The epoch with the lowest validation logit MSE is kept.

Under an unseen judge (``alternatives.unseen_judges``: a classifier DarioNet never trained
against) route (b) cannot be judged by another classifier than its own: its counterpart is the
judge itself fine-tuned the same way (its own logits on the originals as targets), against
DarioNet's images given to the frozen judge (:func:`unseen_judge_routes`).

Files: ``runs/<p>/checkpoints/classifier_lowres.pt`` (the copy's weights, loadable as the
teacher's ``weights``), ``runs/<p>/results/alternatives/classifier_history.csv`` and the
copy's per-image test results beside it (an unseen judge's with ``-<judge>`` in their names);
Table 3 and its version under the unseen judges in the run's figures folder.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from dario_utils.core import fileio, metrics
from dario_utils.core.config import check_config, Config, with_overrides
from dario_utils.core.metrics import cross_entropy_per_image, logit_mse
from dario_utils.core.result_files import read_results, TABLE3, TABLE3_UNSEEN
from dario_utils.core.runtime import setup_torch
from dario_utils.data.dataset import manifest_dataset, training_set
from dario_utils.data.degrade import downsample, upsample
from dario_utils.evaluation import tables
from dario_utils.evaluation.evaluate import evaluate
from dario_utils.models import teacher_of
from dario_utils.models.study_models import BICUBIC, BILINEAR, DARIONET, ORIGINAL
from dario_utils.training.loop import Meter, shard_loader, to_device, Totals, train_loader, Trainer
from dario_utils.training.losses import logit_loss

STATS = ("logit_mse", "agreement", "ce")
"""Per-image statistics of each training and validation pass."""
ROUTES = (  # key, what the classifier sees, which classifier
    ("original", ORIGINAL, "frozen"),
    ("bicubic", BICUBIC, "frozen"),
    ("a", "DarioNet", "frozen"),
    ("b", BICUBIC, "fine-tuned"),
    ("c", "DarioNet", "fine-tuned"),
    ("original_finetuned", ORIGINAL, "fine-tuned"),
)
"""The rows of Table 3: (a) the study, (b) the classifier route, (c) both, and references."""
EVALUATED = {"original": ORIGINAL, "bicubic": BICUBIC, "DarioNet": DARIONET}
"""The evaluation's model key of each image kind."""


def classifier_epochs(config: Config) -> int:
    """The classifier's training budget: ``alternatives.classifier_epochs``, else DarioNet's."""
    return config.alternatives.classifier_epochs or config.train.epochs


def _bicubic(x: Tensor, scale: float) -> Tensor:
    """What the classifier route sees: the downsampled image upscaled bicubically to x's size."""
    return upsample(downsample(x, scale), x.shape[-1], "bicubic")


def _forward(model: nn.Module, x: Tensor, labels: Tensor, teacher: nn.Module, scale: float) -> tuple[Tensor, Tensor]:
    """The logit MSE of the copy on bicubic to the teacher on the original, and :data:`STATS`."""
    with torch.no_grad():
        reference = teacher(x).float()
    logits = model(_bicubic(x, scale)).float()
    return logit_loss(logits, reference), _stats(logits.detach(), reference, labels)


def _stats(logits: Tensor, reference: Tensor, labels: Tensor) -> Tensor:
    """Per-image logit MSE to the teacher, top-1 agreement with it, cross-entropy (B, 3)."""
    columns = [logit_mse(logits, reference), logits.argmax(1) == reference.argmax(1),
               cross_entropy_per_image(logits, labels)]
    return torch.stack([c.double() for c in columns], dim=1)


@torch.no_grad()
def _validate(model: nn.Module, teacher: nn.Module, loader: DataLoader, config: Config, device: torch.device,
              epoch: int, show: bool) -> dict[str, float]:
    """:data:`STATS` of the copy on the bicubic images of the validation split (``loader``)."""
    meter = Meter(STATS, len(loader), f"epoch {epoch} val", device, show, 1)
    for x, batch in meter.batches(loader):
        stats = _stats(model(_bicubic(x, config.data.scale)).float(), teacher(x).float(), batch["label"].to(device))
        meter.add(stats, stats[:, 0].mean())
    return meter.totals().means


def _train_epoch(trainer: Trainer, epoch: int, teacher: nn.Module, scale: float) -> Totals:
    """One epoch of :class:`~dario_utils.training.loop.Trainer` over the copy, each batch passed forward here."""
    for batch in trainer.epoch(epoch):
        x = to_device(batch["image"], trainer.device)
        trainer.step(*_forward(trainer.model, x, batch["label"].to(trainer.device, non_blocking=True), teacher, scale))
    return trainer.totals()


def finetune_classifier(config: Config, progress: bool = True, judge: str | None = None) -> pd.DataFrame:
    """Fine-tune a copy of the teacher (or of the unseen ``judge``, taught by itself) on bicubic-upscaled
    small images with the study's loss, on the images DarioNet trains on
    (:func:`~dario_utils.data.dataset.training_set`, mirrors included where the profile trains on them);
    write the best epoch's weights and the history, and return the history."""
    check_config(config)
    device = setup_torch(config)
    teacher = teacher_of(config, device, judge)
    student = teacher_of(config, device, judge)
    student.requires_grad_(True)  # still in eval mode: batch-norm statistics stay the teacher's
    optimizer = torch.optim.Adam(student.parameters(), lr=config.alternatives.classifier_lr)
    batches = train_loader(training_set(config), config.train.batch_size, config.train.seed,
                           config, 0, 1)
    val_batches = shard_loader(manifest_dataset(config, "val"), config.train.batch_size, config, 0, 1)
    epochs = classifier_epochs(config)
    trainer = Trainer(student, optimizer, batches, STATS, device, False, config.train.max_batches, progress, 1)
    history, best = [], math.inf
    for epoch in range(1, epochs + 1):
        train_row = _train_epoch(trainer, epoch, teacher, config.data.scale).row(epoch, "train")
        val = _validate(student, teacher, val_batches, config, device, epoch, progress)
        history += [train_row, {"epoch": epoch, "phase": "val", **val}]
        if val["logit_mse"] < best:
            best = val["logit_mse"]
            fileio.save_torch(student.net.state_dict(), config.layout.classifier_checkpoint_of(judge))
        print(f"{judge or 'classifier'} epoch {epoch}/{epochs}: train logit MSE {train_row['logit_mse']:.4f}, "
              f"val logit MSE {val['logit_mse']:.4f}, val agreement {val['agreement']:.3f}")
    frame = pd.DataFrame(history)
    fileio.write_csv(frame, config.layout.classifier_history_of(judge))
    return frame


def _finetuned_results(config: Config, progress: bool, judge: str | None = None) -> pd.DataFrame:
    """Per-image test results of the fine-tuned copy of the teacher (or of ``judge``) on the originals,
    bicubic and DarioNet's images."""
    path = config.layout.classifier_checkpoint_of(judge)
    if not path.is_file():
        raise FileNotFoundError(f"no fine-tuned classifier at {path}: run finetune_classifier (notebook 07) first")
    judged = with_overrides(config, {"teacher.weights": str(path)} if judge is None else
                            {"eval.judge": judge, "eval.judge_weights": str(path)})
    run = evaluate(judged, models=list(EVALUATED.values()), progress=progress, save=False)
    name = "per_image_finetuned" if judge is None else f"per_image_finetuned-{judge}"
    fileio.write_csv(run.per_image, config.layout.alternatives_results / f"{name}.csv")
    return run.per_image


def route_table(config: Config, progress: bool = True) -> pd.DataFrame:
    """Table 3: top-1 (with its 95% bootstrap interval), top-5 and agreement with the frozen
    classifier on the originals of each route of :data:`ROUTES`, and McNemar's test of each
    against (a), the study's DarioNet with the frozen classifier. Writes Table 3."""
    table = _routes(config, read_results(config).per_image, _finetuned_results(config, progress))
    tables.write_table(config.layout, TABLE3, table, table3_markdown(config, table))
    return table


def unseen_judge_routes(config: Config, progress: bool = True) -> pd.DataFrame | None:
    """Table 3 again under each of ``alternatives.unseen_judges`` (column ``judge``): (a) is DarioNet,
    taught by the teacher, with the frozen judge; (b) the judge fine-tuned on bicubic images by its own
    logits (:func:`finetune_classifier`), the route a user of that classifier would take instead. Each
    judge's scoring of DarioNet on the test split is logged (:mod:`dario_utils.evaluation.scorings`).
    Writes the table; None, and nothing written, where the profile names no unseen judge."""
    judges = config.alternatives.unseen_judges
    if not judges:
        return None
    check_config(config)
    frozen = evaluate(config, [ORIGINAL, BILINEAR, BICUBIC, DARIONET], progress=progress, save=False,
                      judges=judges).per_image
    frames = []
    for judge in judges:
        judged = frozen[frozen["judge"] == judge]
        tables.log_test_scoring(config, judge, judged.groupby("model")["top1"].mean(),
                                int((judged["model"] == DARIONET).sum()))
        finetune_classifier(config, progress, judge)
        frames.append(_routes(config, judged, _finetuned_results(config, progress, judge)).assign(judge=judge))
    table = pd.concat(frames, ignore_index=True)
    table = table[["judge", *table.columns.drop("judge")]]
    tables.write_table(config.layout, TABLE3_UNSEEN, table, unseen_routes_markdown(config, table))
    return table


def _routes(config: Config, frozen: pd.DataFrame, tuned: pd.DataFrame) -> pd.DataFrame:
    """The rows of :data:`ROUTES` from one classifier's per-image test results, frozen and fine-tuned."""
    by_classifier = {"frozen": frozen, "fine-tuned": tuned}
    teacher_top1 = frozen[frozen["model"] == ORIGINAL].set_index("image")["prediction"]

    def hits(image: str, classifier: str) -> pd.DataFrame:
        frame = by_classifier[classifier]
        return frame[frame["model"] == EVALUATED[image]].set_index("image").loc[teacher_top1.index]

    study, route_b = hits("DarioNet", "frozen")["top1"].to_numpy(), hits("bicubic", "fine-tuned")["top1"].to_numpy()
    rows = []
    for key, image, classifier in ROUTES:
        part = hits(image, classifier)
        top1 = part["top1"].to_numpy()
        low, high = metrics.bootstrap_interval(top1, config.eval.bootstrap, seed=config.seed)
        test = metrics.mcnemar(top1, study)
        same_image = metrics.mcnemar(top1, hits(image, "frozen")["top1"].to_numpy())
        rows.append({"route": key, "image": image, "classifier": classifier, "top1": top1.mean(),
                     "top1_ci_low": low, "top1_ci_high": high, "top5": part["top5"].mean(),
                     "agreement": float(np.mean(part["prediction"].to_numpy() == teacher_top1.to_numpy())),
                     "n_images": len(part), "right_vs_a": test["b"], "wrong_vs_a": test["c"],
                     "p_vs_a": np.nan if key == "a" else test["p_value"],
                     "p_vs_b": np.nan if key == "b" else metrics.mcnemar(top1, route_b)["p_value"],
                     "p_vs_frozen": np.nan if classifier == "frozen" else same_image["p_value"]})
    return pd.DataFrame(rows)


SHOWN = ["route", "image", "classifier", "top1", "top1_ci", "top5", "agreement", "right_vs_a", "wrong_vs_a",
         "p_vs_a", "p_vs_b", "p_vs_frozen"]
"""The columns of Table 3's Markdown."""
COLUMN_NOTE = ("agreement: with the frozen classifier's prediction on the original. right_vs_a / wrong_vs_a: images "
               "this route gets right and (a) wrong / the reverse; p_vs_a, p_vs_b: McNemar's test against (a), (b); "
               "p_vs_frozen: against the frozen classifier on the same images.")


def _shown(table: pd.DataFrame) -> pd.DataFrame:
    """Table 3's rows as its Markdown shows them, with each top-1's interval in one column."""
    return table.assign(top1_ci=[f"{lo:.3f}-{hi:.3f}" for lo, hi in zip(table["top1_ci_low"], table["top1_ci_high"])])[SHOWN]


def _training_note(config: Config, table: pd.DataFrame, classifier: str) -> str:
    """How many images were scored, and how the fine-tuned copy of ``classifier`` was trained."""
    return (f"Profile `{config.profile}`, test split, {int(table['n_images'].max())} images, "
            f"{config.data.image_size} -> {config.small_size} px; the classifier is `{classifier}`, frozen "
            f"or fine-tuned for {classifier_epochs(config)} epoch(s) at lr {config.alternatives.classifier_lr:g} on "
            f"bicubic-upscaled training images{' and their left-right mirrors' if config.train.flipped_copies else ''}"
            " with the study's logit MSE (no labels).")


def table3_markdown(config: Config, table: pd.DataFrame) -> str:
    """Table 3 as Markdown with its notes."""
    notes = [_training_note(config, table, config.teacher.name), COLUMN_NOTE]
    return tables.markdown_table(_shown(table)) + "\n" + "\n".join(f"- {note}" for note in notes) + "\n"


def tie_answer(table: pd.DataFrame) -> str:
    """Whether DarioNet with the frozen classifier (a) and the fine-tuned classifier on bicubic images (b)
    tie on one classifier's rows of Table 3: their top-1, the images only one gets right, McNemar's p."""
    routes = table.set_index("route")
    a, b = routes.loc["a"], routes.loc["b"]
    counts = f"{int(b['wrong_vs_a'])} images only (a) gets right, {int(b['right_vs_a'])} only (b)"
    if b["p_vs_a"] >= 0.05:
        verdict = f"no significant difference (McNemar p = {b['p_vs_a']:.2g})"
    else:
        verdict = f"{'(a)' if a['top1'] > b['top1'] else '(b)'} is better (McNemar p = {b['p_vs_a']:.2g})"
    return f"(a) {a['top1']:.3f} against (b) {b['top1']:.3f}: {verdict}; {counts}"


def unseen_routes_markdown(config: Config, table: pd.DataFrame) -> str:
    """The routes under each unseen judge as Markdown: per judge its rows and whether (a) and (b) tie."""
    parts = []
    for judge, rows in table.groupby("judge", sort=False):
        parts += [f"**Judged by `{judge}`** (DarioNet never trained against it): {tie_answer(rows)}.", "",
                  tables.markdown_table(_shown(rows)), ""]
    notes = [_training_note(config, table, "each unseen judge"),
             f"(a) is the study's DarioNet, taught by `{config.teacher.name}`, with the frozen judge; (b) is the judge "
             "itself fine-tuned on bicubic images with its own logits on the originals as targets: route (b) cannot "
             "be judged by a classifier other than its own, so this is the route a user of that classifier would "
             "take instead.", COLUMN_NOTE]
    return "\n".join(parts) + "\n".join(f"- {note}" for note in notes) + "\n"
