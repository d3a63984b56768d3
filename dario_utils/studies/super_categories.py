"""Table 4, which kinds of object gain: top-1 per WordNet super-category (notebook 07).

With one image per class, per-class F1 can only be 0, 0.667 or 1. Grouping the 1000 classes
into 12 WordNet super-categories (``data/super_categories/super_categories.csv``, made by the
script beside it) gives each group enough images for an accuracy with an interval, and a
test of the report's claim that fine-detail classes such as dog breeds gain less.
:func:`super_category_table` writes Table 4 (:func:`table4_markdown`) and the dogs test.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from dario_utils.core import fileio, metrics, paths
from dario_utils.core.config import Config
from dario_utils.core.result_files import DOGS_TEST, read_results, TABLE4
from dario_utils.evaluation import tables
from dario_utils.models.study_models import BICUBIC, DARIONET, display_name, ORIGINAL, PRETRAINED_SR

TABLE_FILE = paths.PROJECT_ROOT / "data" / "super_categories" / "super_categories.csv"
ALL = "all groups"
"""The row of every image together."""
DOGS = "dogs"
GROUP_MODELS = (ORIGINAL, BICUBIC, PRETRAINED_SR, DARIONET)
"""The models of Table 1 that Table 4 and figure 12 show per group."""


def read_groups() -> pd.Series:
    """Each class's super-category, indexed by wnid, in the table's class order."""
    table = pd.read_csv(TABLE_FILE, dtype=str)
    if len(table) != 1000:
        raise ValueError(f"{TABLE_FILE} should hold the 1000 ImageNet classes, holds {len(table)}")
    return table.set_index("wnid")["group"]


def group_order(groups: pd.Series) -> list[str]:
    """The groups in order of their first class in ImageNet's class order."""
    return list(dict.fromkeys(groups))


def _hits_and_groups(per_image: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """Top-1 hits (image x model) and each image's super-category; an image of a wnid outside
    :data:`TABLE_FILE` is a ValueError."""
    hits = per_image.pivot(index="image", columns="model", values="top1")
    wnids = per_image.drop_duplicates("image").set_index("image")["wnid"].reindex(hits.index)
    group_of_image = wnids.map(read_groups())
    if group_of_image.isna().any():
        raise ValueError(f"images of wnids outside {TABLE_FILE}: {sorted(set(wnids[group_of_image.isna()]))[:5]}")
    return hits, group_of_image


def _paired_gain(hits: pd.DataFrame, model: str, reference: str, n_boot: int, seed: int) -> tuple[float, float, float]:
    """Mean top-1 gain of ``model`` over ``reference`` on the same images, with its bootstrap interval."""
    gain = (hits[model] - hits[reference]).to_numpy(dtype=np.float64)
    low, high = metrics.bootstrap_interval(gain, n_boot, seed=seed)
    return float(gain.mean()), low, high


def group_table(per_image: pd.DataFrame, models: list[str], n_boot: int, seed: int,
                gains: tuple[tuple[str, str], ...] = ((DARIONET, BICUBIC), (DARIONET, PRETRAINED_SR))) -> pd.DataFrame:
    """Table 4: per super-category, the number of images, each model's top-1 with its 95% bootstrap
    interval and the paired top-1 gains named in ``gains`` (model over reference) with theirs.

    ``per_image`` is :func:`dario_utils.evaluation.evaluate.evaluate`'s per-image frame (one judge)."""
    hits, group_of_image = _hits_and_groups(per_image)
    rows = []
    present = [g for g in group_order(read_groups()) if (group_of_image == g).any()]
    for group in [*present, ALL]:
        part = hits if group == ALL else hits[group_of_image == group]
        row: dict[str, object] = {"group": group, "n_images": len(part)}
        for model in models:
            low, high = metrics.bootstrap_interval(part[model].to_numpy(), n_boot, seed=seed)
            row.update({f"top1_{model}": float(part[model].mean()), f"ci_low_{model}": low, f"ci_high_{model}": high})
        for model, reference in gains:
            mean, low, high = _paired_gain(part, model, reference, n_boot, seed)
            row.update({f"gain_{model}_vs_{reference}": mean, f"gain_ci_low_{model}_vs_{reference}": low,
                        f"gain_ci_high_{model}_vs_{reference}": high})
        rows.append(row)
    return pd.DataFrame(rows)


def dogs_test(per_image: pd.DataFrame, model: str = DARIONET, reference: str = BICUBIC,
              n_permutations: int = 10000, seed: int = 0) -> dict[str, float]:
    """Is ``model``'s top-1 gain over ``reference`` smaller on dogs than on the other groups?

    The statistic is the mean per-image gain on dog images minus that on the rest; its one-sided
    p-value is the share of ``n_permutations`` random relabellings (dogs among all images, seeded)
    whose difference is at most the observed one."""
    hits, group_of_image = _hits_and_groups(per_image)
    gain = (hits[model] - hits[reference]).to_numpy(dtype=np.float64)
    dogs = (group_of_image == DOGS).to_numpy()
    if not dogs.any() or dogs.all():
        raise ValueError("the split needs dog images and other images for this test")
    observed = gain[dogs].mean() - gain[~dogs].mean()
    rng = np.random.default_rng(seed)
    count = 0
    for _ in range(n_permutations):
        shuffled = rng.permutation(dogs)
        count += gain[shuffled].mean() - gain[~shuffled].mean() <= observed
    return {"n_dogs": int(dogs.sum()), "n_rest": int((~dogs).sum()), "gain_dogs": float(gain[dogs].mean()),
            "gain_rest": float(gain[~dogs].mean()), "difference": float(observed),
            "p_value": (count + 1) / (n_permutations + 1)}


def dogs_answer(test: dict[str, float], names: dict[str, str], model: str = DARIONET,
                reference: str = BICUBIC, alpha: float = 0.05) -> str:
    """The report's claim about dogs, answered in one sentence from :func:`dogs_test`."""
    verdict = ("smaller on dogs than elsewhere (one-sided permutation p = {p:.3g})" if test["p_value"] < alpha else
               "not significantly smaller on dogs (one-sided permutation p = {p:.3g}): this split does not "
               "support the report's claim")
    return (f"{names[model]}'s top-1 gain over {names[reference]} is {100 * test['gain_dogs']:+.1f} points on the "
            f"{test['n_dogs']} dog images and {100 * test['gain_rest']:+.1f} on the {test['n_rest']} others: "
            + verdict.format(p=test["p_value"]) + ".")


def super_category_table(config: Config) -> tuple[pd.DataFrame, dict[str, float]]:
    """Table 4 (top-1 per WordNet super-category of Table 1's models, DarioNet's gains) and the
    test of the report's claim that dogs gain less; writes Table 4."""
    per_image = read_results(config).per_image
    table = group_table(per_image, list(GROUP_MODELS), config.eval.bootstrap, config.seed)
    test = dogs_test(per_image, seed=config.seed)
    tables.write_table(config.layout, TABLE4, table, table4_markdown(config, table, test))
    fileio.write_csv(pd.DataFrame([test]), config.layout.table(DOGS_TEST))
    return table, test


def table4_markdown(config: Config, table: pd.DataFrame, test: dict[str, float]) -> str:
    """Table 4 as Markdown: top-1 with its interval per model, DarioNet's gains, the dogs test."""
    rows = []
    for _, row in table.iterrows():
        entry = {"group": row["group"], "images": int(row["n_images"])}
        for model in GROUP_MODELS:
            entry[display_name(model)] = (f"{row[f'top1_{model}']:.2f} "
                                          f"({row[f'ci_low_{model}']:.2f}-{row[f'ci_high_{model}']:.2f})")
        for reference in (BICUBIC, PRETRAINED_SR):
            key = f"darionet_vs_{reference}"
            entry[f"gain vs {display_name(reference)}"] = (
                f"{row[f'gain_{key}']:+.2f} ({row[f'gain_ci_low_{key}']:+.2f} to {row[f'gain_ci_high_{key}']:+.2f})")
        rows.append(entry)
    names = {m: display_name(m) for m in GROUP_MODELS}
    notes = [f"Profile `{config.profile}`, test split, judged by `{config.judge}`; top-1 with its 95% bootstrap "
             "interval; gains are paired (the same images), with their 95% bootstrap intervals.",
             "Groups: WordNet 3.0 super-categories (data/super_categories/); one image per class, so a group's "
             "accuracy pools its classes.",
             dogs_answer(test, names)]
    return tables.markdown_table(pd.DataFrame(rows)) + "\n" + "\n".join(f"- {note}" for note in notes) + "\n"
