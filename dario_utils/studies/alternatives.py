"""Notebook 07's questions: what each route costs, and which kinds of object gain.

:func:`cost_frontier` prices every method of Table 1 and of Table 3
(:mod:`dario_utils.studies.classifier_route`) per image at inference: FLOPs counted, parameters, and
images/s measured here in one run (:mod:`dario_utils.studies.costs`), beside its top-1.
:func:`answers` puts notebook 07's answers in words, from Tables 3 and 4 (Table 4:
:mod:`dario_utils.studies.super_categories`) and the cost table.
"""
from __future__ import annotations

import pandas as pd
import torch

from dario_utils.core.config import check_config, Config
from dario_utils.data.dataset import manifest_dataset
from dario_utils.data.degrade import downsample, reconstruct, upsample
from dario_utils.evaluation import tables
from dario_utils.models import build_student, teacher_of
from dario_utils.studies.costs import cost_table, CostedRoute, frontier
from dario_utils.core.result_files import (ALTERNATIVES_NOTEBOOK, COST_FRONTIER, EVALUATION_NOTEBOOK, TABLE1, TABLE3,
                                           read_table)
from dario_utils.core.runtime import setup_torch
from dario_utils.studies.super_categories import dogs_answer, GROUP_MODELS
from dario_utils.models.study_models import BICUBIC, BILINEAR, DARIONET, display_name, ORIGINAL, PRETRAINED_SR

SR_ROUTE, BICUBIC_ROUTE = "SR net + classifier", "bicubic + classifier"
ALPHA = 0.05
"""Significance level of the answers' McNemar tests."""
METHODS = (  # method, where its top-1 is (table, row key), the computation it runs
    ("original", (TABLE1, ORIGINAL), "classifier on the original"),
    ("bilinear", (TABLE1, BILINEAR), "bilinear + classifier"),
    ("bicubic", (TABLE1, BICUBIC), BICUBIC_ROUTE),
    ("pretrained SR", (TABLE1, PRETRAINED_SR), SR_ROUTE),
    ("DarioNet (a)", (TABLE1, DARIONET), SR_ROUTE),
    ("bicubic + fine-tuned classifier (b)", (TABLE3, "b"), BICUBIC_ROUTE),
    ("DarioNet + fine-tuned classifier (c)", (TABLE3, "c"), SR_ROUTE),
)
"""Each method of the cost frontier; methods that run the same networks share one measurement."""


def _routes(config: Config, device: torch.device) -> list[CostedRoute]:
    """The computations of :data:`METHODS`, with the networks each runs (the whole SR net: at
    inference no head is cached)."""
    classifier = teacher_of(config, device)
    sr = build_student(config, device)  # DarioNet's architecture: its weights do not change the cost
    scale, size = config.data.scale, config.data.image_size
    return [
        CostedRoute("classifier on the original", "classifier on the original", classifier, (classifier,)),
        CostedRoute("bilinear + classifier", "bilinear + classifier",
                    lambda x: classifier(upsample(downsample(x, scale), size, "bilinear")), (classifier,)),
        CostedRoute(BICUBIC_ROUTE, BICUBIC_ROUTE,
                    lambda x: classifier(upsample(downsample(x, scale), size, "bicubic")), (classifier,)),
        CostedRoute(SR_ROUTE, SR_ROUTE, lambda x: classifier(reconstruct(sr.eval(), downsample(x, scale), size)),
                    (sr, classifier)),
    ]


def _speed_batches(config: Config) -> list[torch.Tensor]:
    """The first ``alternatives.speed_images`` test images, in batches of ``eval.batch_size``."""
    dataset = manifest_dataset(config, "test")
    count = min(config.alternatives.speed_images, len(dataset))
    images = torch.stack([dataset[i]["image"] for i in range(count)])
    return list(images.split(config.eval.batch_size))


def cost_frontier(config: Config) -> pd.DataFrame:
    """Per method: top-1 (Tables 1 and 3), GFLOPs per image, parameters and images/s (measured
    in this call, on this machine), and whether it is on the cost frontier; writes the table."""
    check_config(config)
    device = setup_torch(config)
    costs = cost_table(_routes(config, device), [b.to(device) for b in _speed_batches(config)]).set_index("route")
    table1 = read_table(config.layout, TABLE1, EVALUATION_NOTEBOOK).set_index("model")
    table3 = read_table(config.layout, TABLE3, ALTERNATIVES_NOTEBOOK).set_index("route")
    top1 = {TABLE1: table1["top1"], TABLE3: table3["top1"]}
    rows = [{"method": method, "top1": float(top1[table][key]), "computation": route,
             **costs.loc[route, ["gflops_per_image", "parameters", "images_per_s"]].to_dict()}
            for method, (table, key), route in METHODS]
    frame = pd.DataFrame(rows)
    small = frame["method"] != "original"  # the original is the reference, not a way to classify a small image
    frame["on_frontier"] = frontier(frame[small]).reindex(frame.index, fill_value=False)
    tables.write_table(config.layout, COST_FRONTIER, frame, cost_markdown(config, frame))
    return frame


def cost_markdown(config: Config, frame: pd.DataFrame) -> str:
    """The cost table as Markdown with its notes."""
    shown = frame.assign(parameters=[f"{p / 1e6:.1f} M" for p in frame["parameters"]],
                         images_per_s=[f"{r:.1f}" for r in frame["images_per_s"]],
                         gflops_per_image=[f"{g:.2f}" for g in frame["gflops_per_image"]])
    notes = [f"GFLOPs per {config.data.image_size} px test image ({config.small_size} px input), counted by "
             "torch.utils.flop_counter (convolutions and matrix products, 2 per multiply-add; resizes count 0).",
             f"images/s measured in one run on this machine: {config.alternatives.speed_images} test images per "
             f"computation, batches of {config.eval.batch_size}, device {config.device}, "
             f"{config.num_threads or 'all'} thread(s); the SR net runs whole (no cached head).",
             "on_frontier: no other method on the small image is at most as costly and more accurate (the "
             "original is the reference, not on it)."]
    return tables.markdown_table(shown) + "\n" + "\n".join(f"- {note}" for note in notes) + "\n"


def answer_directions(table3: pd.DataFrame, table4: pd.DataFrame, dogs: dict[str, float]) -> dict[str, str]:
    """Which way each of notebook 07's answers goes, as words a rerun can be compared with:
    ``alone`` (does DarioNet alone beat the fine-tuned classifier on bicubic images?), ``together``
    (does the SR net add significantly to the fine-tuned classifier?), ``originals`` (what fine-tuning
    does to the classifier on the original images), ``largest_gain`` and ``smallest_gain`` (the groups
    of Table 4 where DarioNet gains most and least over bicubic) and ``dogs`` (is the gain smaller on dogs?)."""
    routes = table3.set_index("route")
    a, b, c, original, tuned_original = (routes.loc[k] for k in ("a", "b", "c", "original", "original_finetuned"))
    groups = table4[table4["group"] != "all groups"].set_index("group")["gain_darionet_vs_bicubic"]
    return {
        "alone": "b as accurate or more" if b["top1"] >= a["top1"] or b["p_vs_a"] >= ALPHA else "a beats b",
        "together": "c adds significantly to b" if c["p_vs_b"] < ALPHA else "c not significantly above b",
        "originals": ("no significant change" if tuned_original["p_vs_frozen"] >= ALPHA else
                      "forgets" if tuned_original["top1"] < original["top1"] else "does better"),
        "largest_gain": str(groups.idxmax()),
        "smallest_gain": str(groups.idxmin()),
        "dogs": "smaller on dogs" if dogs["p_value"] < ALPHA else "not significantly smaller on dogs",
    }


def answers(config: Config, table3: pd.DataFrame, costs: pd.DataFrame, table4: pd.DataFrame,
            dogs: dict[str, float]) -> str:
    """The three answers of notebook 07 in words, from its tables (their directions:
    :func:`answer_directions`)."""
    routes = table3.set_index("route")
    a, b, c, original, tuned_original = (routes.loc[k] for k in ("a", "b", "c", "original", "original_finetuned"))
    direction = answer_directions(table3, table4, dogs)
    cost = costs.set_index("method")
    sr, bicubic = cost.loc["DarioNet (a)"], cost.loc["bicubic + fine-tuned classifier (b)"]
    ratio = sr["gflops_per_image"] / bicubic["gflops_per_image"]
    alone = ("DarioNet alone is not worth its cost: the fine-tuned classifier on bicubic images is as accurate or "
             "more" if direction["alone"] == "b as accurate or more" else
             f"DarioNet alone beats the fine-tuned classifier by {100 * (a['top1'] - b['top1']):.1f} points")
    gain = f"{100 * (c['top1'] - b['top1']):+.1f} points (McNemar p = {c['p_vs_b']:.3g}) for {ratio:.0f}x its compute"
    together = (f"the SR net adds {gain} to the fine-tuned classifier, worth it only where those points matter more "
                "than throughput" if direction["together"] == "c adds significantly to b" else
                f"the SR net's {gain} on top of the fine-tuned classifier are not significant at this budget")
    worth = f"{alone} (McNemar p = {b['p_vs_a']:.3g}) at {ratio:.0f}x less compute; {together}"
    groups = table4[table4["group"] != "all groups"].set_index("group")["gain_darionet_vs_bicubic"]
    lines = [
        f"1. **Classifier or SR net?** (a) DarioNet + the frozen classifier: top-1 {a['top1']:.3f}; (b) bicubic + "
        f"the classifier fine-tuned with the same loss: {b['top1']:.3f} (vs the frozen classifier on bicubic "
        f"{routes.loc['bicubic', 'top1']:.3f}, McNemar p = {b['p_vs_frozen']:.3g}); (c) both: {c['top1']:.3f} "
        f"(vs (a), p = {c['p_vs_a']:.3g}). On the original images the fine-tuned classifier scores "
        f"{tuned_original['top1']:.3f} against the frozen one's {original['top1']:.3f} (McNemar p = "
        f"{tuned_original['p_vs_frozen']:.3g}): "
        + {"no significant change": "no significant change.", "forgets": "it forgets part of what it knew.",
           "does better": "it does not forget; it does better on the originals too."}[direction["originals"]],
        f"2. **What it costs:** the SR net + classifier takes {sr['gflops_per_image']:.1f} GFLOPs per image "
        f"against {bicubic['gflops_per_image']:.2f} for bicubic + classifier, and runs at "
        f"{sr['images_per_s']:.2g} against {bicubic['images_per_s']:.3g} images/s on this machine: {worth}.",
        f"3. **Which kinds of object gain:** DarioNet's gain over bicubic is largest on {groups.idxmax()} "
        f"({100 * groups.max():+.1f} points) and smallest on {groups.idxmin()} ({100 * groups.min():+.1f}). "
        + dogs_answer(dogs, {m: display_name(m) for m in GROUP_MODELS}),
        f"\nSettings: profile `{config.profile}`, {int(a['n_images'])} test images, {config.data.image_size} -> "
        f"{config.small_size} px, classifier `{config.teacher.name}`.",
    ]
    return "\n".join(lines) + "\n"
