"""The numbers of the README and ``docs/``, written by code from the committed result files.

A page marks each generated part with a pair of comments that GitHub does not render::

    <!-- begin: headline -->
    ...written by python -m dario_utils.runner.docs...
    <!-- end: headline -->

:data:`BLOCKS` maps each name to the function that writes it from committed files only
(``figures/<profile>/``, ``data/report/``, ``figures/test_scorings.csv``, ``notebooks/recorded_spread.json``,
the package's own code), so a number typed into a block by hand is replaced, and ``--check`` (run by
``make test``, ``tests/test_docs.py``) fails wherever a page disagrees with the files or links to a file that
does not exist. ``make docs`` also draws the front page's figure (:func:`headline_figure`).

    python -m dario_utils.runner.docs [--check]
"""
from __future__ import annotations

import argparse
import ast
import json
import re
import sys
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pandas as pd

from dario_utils.core import fileio, paths
from dario_utils.core.config import load_config
from dario_utils.evaluation.crossval import versus_file, versus_markdown_frame
from dario_utils.evaluation.report import report_gap, report_table1
from dario_utils.figures.readme import other_commits
from dario_utils.models.study_models import BICUBIC, BILINEAR, DARIONET, display_name, MODELS, ORIGINAL
from dario_utils.runner.published import SEED_RUNS, VARIANTS
from dario_utils.studies.alternatives import ALPHA
from dario_utils.studies.classifier_route import tie_answer

PAGES = ("README.md", "docs/*.md")
"""The pages whose blocks are generated, relative to the project root."""
BLOCK = re.compile(r"(<!-- begin: ([\w-]+) -->\n)(.*?)(<!-- end: \2 -->)", re.DOTALL)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
"""A Markdown link or image: its target."""
TEST_TIME_FILE = "figures/test_time.json"
"""``make test``'s last timing on a clean checkout, written by ``python -m tools.test_time``."""
HEADLINE_PROFILE = "imagenet-sample"
"""The profile whose cross-validated estimate is the study's headline."""
TWO_TEACHERS = "imagenet-sample-two-teachers"
"""The headline recipe taught by two classifiers at once, cross-validated over the same folds (issue 32)."""
HEADLINE_FIGURE = paths.PROJECT_ROOT / "figures" / "headline.png"
COMMANDS = {"demo": "make reproduce", "imagenet-sample": "make reproduce PROFILE=imagenet-sample DATA=<dir>"}
"""The command that makes each published profile's results."""
ROUTES = {"bicubic": "bicubic + frozen classifier", "a": "(a) DarioNet + frozen classifier (the study)",
          "b": "(b) bicubic + fine-tuned classifier", "c": "(c) DarioNet + fine-tuned classifier",
          "original": "originals + frozen classifier", "original_finetuned": "originals + fine-tuned classifier"}
"""Notebook 07's routes (Table 3's ``route`` keys), in words."""


def _figures(profile: str) -> Path:
    """The committed ``figures/<profile>/`` (the project's own output root)."""
    return paths.RunLayout(profile, paths.PROJECT_ROOT).published_figures


def _published_profiles() -> list[str]:
    """Every profile with a committed Table 1, less the headline's recipe variants and seeds (their rows are in
    its variants log, :data:`VARIANTS`)."""
    variants = _figures(HEADLINE_PROFILE) / VARIANTS
    apart = set(pd.read_csv(variants)["profile"]) - {HEADLINE_PROFILE} if variants.is_file() else set()
    return sorted(p.name for p in (paths.PROJECT_ROOT / "figures").iterdir()
                  if (p / "table1.csv").is_file() and p.name not in apart)


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def _p(value: float) -> str:
    """A p-value as the tables print it (blank where there is none)."""
    return "" if pd.isna(value) else f"{value:.2g}"


def _share(top1: pd.Series, reference: str) -> float:
    """DarioNet's share of the top-1 lost to downsampling (original vs ``reference``)."""
    return float((top1[DARIONET] - top1[reference]) / (top1[ORIGINAL] - top1[reference]))


def _table1(profile: str) -> pd.DataFrame:
    return pd.read_csv(_figures(profile) / "table1.csv").set_index("model")


def _crossval(profile: str) -> pd.DataFrame | None:
    file = _figures(profile) / "crossval" / "crossval.csv"
    return pd.read_csv(file).set_index("judge") if file.is_file() else None


def _crossval_folds(profile: str) -> tuple[int, int, int]:
    """Folds done, folds in all and images in all, from the published fold table and the folds file."""
    folder = _figures(profile) / "crossval"
    folds = pd.read_csv(folder / "folds.csv")
    return len(pd.read_csv(folder / "crossval_folds.csv")), folds["fold"].nunique(), len(folds)


def split_gap_interval(profile: str) -> tuple[float, float] | None:
    """The 95% bootstrap interval of the gap recovered against bicubic on ``profile``'s test split, as the
    pipeline wrote it in the notes of ``table1.md`` (None where it did not)."""
    file = _figures(profile) / "table1.md"
    match = re.search(r"recovers [\d.]+% \(95% bootstrap interval over the images: ([\d.]+)-([\d.]+)%\) of the "
                      r"top-1 lost to downsampling \(original vs bicubic", file.read_text()) if file.is_file() else None
    return (float(match[1]) / 100, float(match[2]) / 100) if match else None


def _seed_runs(profile: str) -> pd.DataFrame | None:
    """DarioNet's row per training seed (``seed_runs.csv``), with its gap against bicubic from Table 1."""
    file = _figures(profile) / SEED_RUNS
    if not file.is_file():
        return None
    top1 = _table1(profile)["top1"]
    runs = pd.read_csv(file)
    runs = runs[runs["model"] == DARIONET].copy()
    runs["gap"] = (runs["top1"] - top1[BICUBIC]) / (top1[ORIGINAL] - top1[BICUBIC])
    return runs


def headline() -> str:
    """The study's answer in one sentence: the cross-validated gap with its intervals and the unseen judges,
    or, before the cross-validation is published, the headline profile's test split with its interval."""
    pooled = _crossval(HEADLINE_PROFILE)
    if pooled is None:
        return _test_split_headline() + (" The cross-validated estimate over every image of the folder has not "
                                         "been published yet (`make crossval PROFILE=imagenet-sample DATA=<dir>`).\n")
    done, folds, images = _crossval_folds(HEADLINE_PROFILE)
    teacher = pooled[pooled["role"] == "teacher"].iloc[0]
    partial = "" if done == folds else (f" **So far {done} of {folds} folds are done, so this covers "
                                         f"{int(teacher['n_images'])} of the {images} images; the rest follow.**")
    unseen = "; ".join(f"{judge} {_pct(row['gap_vs_bicubic'])} ({_pct(row['gap_vs_bicubic_low'])}-"
                       f"{_pct(row['gap_vs_bicubic_high'])})" for judge, row in pooled.iterrows()
                       if row["role"] != "teacher")
    return (f"On ImageNet images shrunk to 0.32x, DarioNet recovers **{_pct(teacher['gap_vs_bicubic'])}** "
            f"({_pct(teacher['gap_vs_bicubic_low'])}-{_pct(teacher['gap_vs_bicubic_high'])}, 95% bootstrap interval) "
            f"of the top-1 lost to downsampling against bicubic upscaling, and "
            f"{_pct(teacher['gap_vs_bilinear'])} ({_pct(teacher['gap_vs_bilinear_low'])}-"
            f"{_pct(teacher['gap_vs_bilinear_high'])}) against bilinear, the report's baseline (the report: "
            f"{_pct(report_gap())}), judged by its teacher EfficientNet-Lite0: {folds}-fold cross-validation over "
            f"the {images} images of `{HEADLINE_PROFILE}`, each image scored once by a model that never trained on "
            f"it.{partial} Judged by classifiers it never trained against (gap vs bicubic): {unseen}.\n")


def _test_split_headline() -> str:
    """The headline profile's test-split result in one sentence, with its interval and its other seeds."""
    table = _table1(HEADLINE_PROFILE)
    top1, interval = table["top1"], split_gap_interval(HEADLINE_PROFILE)
    ci = f" ({_pct(interval[0])}-{_pct(interval[1])}, 95% bootstrap interval over the images)" if interval else ""
    runs, seed = _seed_runs(HEADLINE_PROFILE), load_config(HEADLINE_PROFILE).train.seed
    others = [] if runs is None else [r for r in runs.itertuples() if r.seed != seed]
    seeds = "".join(f"; with training seed {r.seed} it recovers {_pct(r.gap)}" for r in others)
    return (f"On the {int(table['n_images'].max())} test images of `{HEADLINE_PROFILE}` (ImageNet photos shrunk to "
            f"0.32x, 256 -> 81 px), DarioNet recovers **{_pct(_share(top1, 'bicubic'))}**{ci} of the top-1 lost to "
            f"downsampling against bicubic upscaling, and {_pct(_share(top1, 'bilinear'))} against bilinear, the "
            f"report's baseline (the report: {_pct(report_gap())} on about 25,000 images), judged by its teacher "
            f"EfficientNet-Lite0{seeds}.")


def results_table() -> str:
    """Each published profile's Table 1 in one table: top-1 with its interval, and the gaps; the report's row."""
    rows = []
    for profile in _published_profiles():
        table = _table1(profile)
        top1 = table["top1"]
        rows.append({"profile": f"`{profile}`", "test images": int(table["n_images"].max()),
                     **{display_name(m): f"{top1[m]:.3f} ({table.loc[m, 'top1_ci_low']:.2f}-"
                                         f"{table.loc[m, 'top1_ci_high']:.2f})" for m in MODELS},
                     "gap vs bicubic": _pct(_share(top1, BICUBIC)), "gap vs bilinear": _pct(_share(top1, BILINEAR))})
    report = report_table1()["top1"]
    rows.append({"profile": "the report (ResNet-50, ILSVRC2012)", "test images": "about 25,000",
                 **{display_name(m): f"{report[m]:.3f}" if m in report else "-" for m in MODELS},
                 "gap vs bicubic": "-", "gap vs bilinear": _pct(report_gap())})
    return _markdown(pd.DataFrame(rows))


def crossval_table(profile: str = HEADLINE_PROFILE) -> str:
    """``profile``'s cross-validated estimate under every judge, and how many folds stand behind it."""
    pooled = _crossval(profile)
    if pooled is None:
        return f"Not published yet: `make crossval PROFILE={profile} DATA=<dir>` runs it.\n"
    done, folds, images = _crossval_folds(profile)
    rows = [{"judge": f"{judge} ({row['role']})", "images": int(row["n_images"]),
             **{f"top-1 {display_name(m)}": f"{row[f'top1_{m}']:.3f}" for m in MODELS},
             "gap vs bicubic": f"{_pct(row['gap_vs_bicubic'])} ({_pct(row['gap_vs_bicubic_low'])}-"
                               f"{_pct(row['gap_vs_bicubic_high'])})",
             "gap vs bilinear": f"{_pct(row['gap_vs_bilinear'])} ({_pct(row['gap_vs_bilinear_low'])}-"
                                f"{_pct(row['gap_vs_bilinear_high'])})",
             "McNemar vs bicubic": f"{int(row['mcnemar_bicubic_darionet_only'])}:{int(row['mcnemar_bicubic_other_only'])}",
             "McNemar vs its start": f"{int(row['mcnemar_start_darionet_only'])}:{int(row['mcnemar_start_other_only'])}"}
            for judge, row in pooled.iterrows()]
    status = "all folds done" if done == folds else f"partial: {done} of {folds} folds done"
    return (f"`{profile}`, {folds} folds over {images} images ({status}).\n\n"
            + _markdown(pd.DataFrame(rows)))


def crossval_times(profile: str = HEADLINE_PROFILE) -> str:
    """Each of ``profile``'s published folds' training time (every epoch and validation, its ``history.csv``)."""
    folds = sorted((_figures(profile) / "crossval").glob("fold*/history.csv"))
    if not folds:
        return "No fold published yet.\n"
    rows = [{"fold": history.parent.name.removeprefix("fold"),
             "training (epochs and validation)": _minutes(pd.read_csv(history)["seconds"].sum())} for history in folds]
    return _markdown(pd.DataFrame(rows))


def two_teachers() -> str:
    """The DarioNet taught by two classifiers (:data:`TWO_TEACHERS`): its cross-validation so far, and its
    comparison image by image with the one-teacher recipe's DarioNet on the same images, with
    :func:`two_teachers_answer`'s answer per unseen judge."""
    if _crossval(TWO_TEACHERS) is None:
        return f"Not run yet: `make crossval PROFILE={TWO_TEACHERS} DATA=<dir>` runs it.\n"
    text = (crossval_table(TWO_TEACHERS) + "\nEach fold's training time, on 2 cores not always free of other jobs "
            "(a quiet machine is faster):\n\n" + crossval_times(TWO_TEACHERS))
    other, versus = _two_teachers_versus()
    if versus is None:
        return text + f"\nNo fold of `{other}` to compare with yet.\n"
    return (text + f"\nAgainst `{other}`'s DarioNet (one teacher) on the same images, the folds both have done:\n\n"
            + _markdown(versus_markdown_frame(versus, other)) + "\n" + _two_teachers_verdicts(versus))


def two_teachers_answer() -> str:
    """Per unseen judge, one paragraph: does the DarioNet taught by two classifiers (:data:`TWO_TEACHERS`)
    recover more of the gap than the one-teacher recipe's on the same images?"""
    other, versus = _two_teachers_versus()
    if versus is None:
        return (f"Not answered yet: `make crossval PROFILE={TWO_TEACHERS} DATA=<dir>` compares it with "
                f"`{other}` fold by fold.\n")
    return _two_teachers_verdicts(versus)


def _two_teachers_versus() -> tuple[str, pd.DataFrame | None]:
    """The profile :data:`TWO_TEACHERS` is compared with, and the published comparison (None before any)."""
    config = load_config(TWO_TEACHERS, output_root=paths.PROJECT_ROOT)
    file = versus_file(config)
    return config.crossval.compare_with, pd.read_csv(file, dtype={"folds": str}) if file.is_file() else None


def _two_teachers_verdicts(versus: pd.DataFrame) -> str:
    """One paragraph per unseen judge of ``versus``: "shown" only where the interval of the difference leaves
    out zero and McNemar's test reaches :data:`ALPHA`."""
    paragraphs = []
    for r in versus[versus["role"] != "teacher"].itertuples():
        if r.gap_difference_low <= 0 <= r.gap_difference_high:
            verdict = "the interval includes zero: no change shown"
        elif r.mcnemar_p >= ALPHA:
            verdict = f"the interval leaves out zero, but McNemar's test does not reach p < {ALPHA}: suggestive, not shown"
        else:
            verdict = f"the interval leaves out zero and McNemar's test gives p < {ALPHA}"
        paragraphs.append(
            f"Under {r.judge}, which taught neither, two teachers recover {_pct(r.gap_vs_bicubic)} of the gap "
            f"against bicubic where one recovers {_pct(r.gap_vs_bicubic_other)}, on the {r.n_images} images of "
            f"fold(s) {r.folds}: {100 * r.gap_difference:+.1f} points ({100 * r.gap_difference_low:+.1f} to "
            f"{100 * r.gap_difference_high:+.1f}, 95% bootstrap interval); {verdict}. McNemar: "
            f"{r.mcnemar_this_only}:{r.mcnemar_other_only} images only the two-teacher : only the one-teacher "
            f"DarioNet gets right (p = {r.mcnemar_p:.2g}).\n")
    return "\n".join(paragraphs)


def scorings_table() -> str:
    """How many times each profile's test images were scored, and with how many recipes."""
    variants = _figures(HEADLINE_PROFILE) / VARIANTS
    before = ""
    if variants.is_file():
        scored = pd.read_csv(variants)["test_top1"].iloc[1:].notna().sum()
        before = (f"Before the log: {scored} scorings of the `{HEADLINE_PROFILE}` test split by trained "
                  f"recipes, transcribed in `figures/{HEADLINE_PROFILE}/{VARIANTS}`.\n")
    file = paths.RunLayout(HEADLINE_PROFILE, paths.PROJECT_ROOT).scorings_log
    if not file.is_file():
        return before + "\nNo scoring logged yet in `figures/test_scorings.csv`.\n"
    log = pd.read_csv(file, dtype={"fold": str})
    rows = [{"profile": f"`{profile}`", "scorings logged": len(group), "recipes": group["recipe"].nunique(),
             "judges": ", ".join(sorted(group["judge"].unique())), "first": group["date"].min()[:10],
             "last": group["date"].max()[:10]} for profile, group in log.groupby("profile")]
    return before + "\n" + _markdown(pd.DataFrame(rows))


def run_times() -> str:
    """Each published run: the command, its time and machine from its provenance (or that it predates them)."""
    rows = []
    for profile in _published_profiles():
        provenance = json.loads((_figures(profile) / "provenance.json").read_text())
        seconds = provenance.get("seconds")
        notebooks = ", ".join(nb[:2] for nb in provenance.get("notebooks", []))
        dirty = " (with uncommitted changes)" if provenance.get("dirty") else ""
        row = {"command": f"`{COMMANDS.get(profile, f'make reproduce PROFILE={profile}')}`",
               "published run": f"`{profile}`, commit {provenance.get('commit', '?')}{other_commits(provenance)}{dirty}, "
                                f"{provenance.get('date', '?')}, notebooks {notebooks}"}
        if seconds:
            row["time"] = (f"{_minutes(sum(seconds.values()))} ("
                           + ", ".join(f"{nb[:2]} {_minutes(s)}" for nb, s in seconds.items()) + ")")
            row["machine"] = f"{provenance.get('cpu', '?')}, {provenance.get('threads', '?')} threads"
        else:
            row["time"] = "not recorded: this run's provenance predates recorded times"
            row["machine"] = "not recorded"
        rows.append(row)
    rows.append(_test_time_row())
    return _markdown(pd.DataFrame(rows))


def _test_time_row() -> dict[str, str]:
    """``make test``'s row: its last timing on a clean checkout (``figures/test_time.json``, ``tools/test_time.py``)."""
    file = paths.PROJECT_ROOT / TEST_TIME_FILE
    if not file.is_file():
        return {"command": "`make test`", "published run": "-", "time": f"not recorded (`{TEST_TIME_FILE}`)",
                "machine": "-"}
    record = json.loads(file.read_text())
    counts = ", ".join(f"{p['target']} {p['counts'].get('passed', 0)} passed in {_minutes(p['seconds'])}"
                       for p in record["phases"])
    dirty = " (with uncommitted changes)" if record.get("dirty") else ""
    isa = f", ONEDNN_MAX_CPU_ISA={record['onednn_max_cpu_isa']}" if record.get("onednn_max_cpu_isa") else ""
    return {"command": "`make test`", "published run": f"commit {record['commit']}{dirty}, {record['date'][:10]}",
            "time": f"{_minutes(record['seconds'])} ({counts})", "machine": f"{record['cpu']}, {record['cores']} cores{isa}"}


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def module_table() -> str:
    """Every module of the package and of ``tools/gpu`` with the first sentence of its docstring (no line
    counts: they would make every edit of a module a stale page)."""
    rows = []
    files = sorted((paths.PROJECT_ROOT / "dario_utils").rglob("*.py")) + sorted(
        (paths.PROJECT_ROOT / "tools" / "gpu").glob("*.py"))
    for file in files:
        doc = ast.get_docstring(ast.parse(file.read_text())) or ""
        summary = " ".join(doc.split("\n\n")[0].split()).replace("|", "\\|")
        rows.append({"module": f"`{file.relative_to(paths.PROJECT_ROOT).as_posix()}`", "what it holds": summary})
    return _markdown(pd.DataFrame(rows))


def seeds_table() -> str:
    """DarioNet per training seed on each profile that committed its seed runs (``seed_runs.csv``)."""
    rows = []
    for profile in _published_profiles():
        runs = _seed_runs(profile)
        if runs is None:
            continue
        rows += [{"profile": f"`{profile}`", "seed": r.seed, "top-1": f"{r.top1:.3f}", "agreement": f"{r.agreement:.3f}",
                  "CE": f"{r.avg_ce:.3f}", "gap vs bicubic": _pct(r.gap), "source": r.source} for r in runs.itertuples()]
    return _markdown(pd.DataFrame(rows)) if rows else "No profile has committed seed runs.\n"


def variants_table() -> str:
    """Every recipe variant tried on the headline profile, as transcribed in ``variants.csv`` (digits as given),
    with the profile file that reruns it."""
    file = _figures(HEADLINE_PROFILE) / VARIANTS
    if not file.is_file():
        return "No variants log committed.\n"
    v = pd.read_csv(file, dtype=str, keep_default_na=False)
    test = [f"{t} ({g}%)" if g else (t or "not scored") for t, g in zip(v["test_top1"], v["test_gap_vs_bicubic_pct"])]
    frame = pd.DataFrame({"variant": v["variant"], "profile": [f"`{p}`" for p in v["profile"]],
                          "frozen blocks": v["frozen_blocks"], "mirrors": v["flipped_copies"],
                          "lr": v["lr"], "schedule": v["lr_schedule"], "epochs": v["epochs"], "seed": v["seed"],
                          "best epoch": v["best_epoch"], "val loss": v["val_loss"], "val agreement": v["val_agreement"],
                          "val PSNR (dB)": v["val_psnr_db"], "test top-1 (gap vs bicubic)": test,
                          "status": v["status"], "source": v["source"]})
    return _markdown(frame)


def _per_profile(notebook: str, names: tuple[str, ...], render: Callable[..., str]) -> str:
    """``render(profile, *files)`` for each published profile that holds every file of ``names``; for the
    others, that ``notebook`` was not part of its published run."""
    parts = []
    for profile in _published_profiles():
        files = [_figures(profile) / name for name in names]
        parts.append(render(profile, *files) if all(f.is_file() for f in files)
                     else f"`{profile}`: notebook {notebook} was not part of its published run.\n")
    return "\n".join(parts)


def judge_transfer() -> str:
    """Notebook 06's Table 2 per profile: every model under its teacher and under the unseen judge."""
    def render(profile: str, file: Path) -> str:
        t2 = pd.read_csv(file)
        by = {judge: g.set_index("model") for judge, g in t2.groupby("judge", sort=False)}
        (teacher, t), (unseen, u) = list(by.items())[:2]
        rows = [{"model": display_name(m), f"top-1, {teacher}": f"{t.loc[m, 'top1']:.3f}",
                 f"top-1, {unseen}": f"{u.loc[m, 'top1']:.3f}", f"agreement, {teacher}": f"{t.loc[m, 'agreement']:.3f}",
                 f"agreement, {unseen}": f"{u.loc[m, 'agreement']:.3f}", f"McNemar p of DarioNet vs row, {teacher}":
                 _p(t.loc[m, "mcnemar_p"]), f"same, {unseen}": _p(u.loc[m, "mcnemar_p"])} for m in MODELS]
        return (f"`{profile}` ({int(t['n_images'].max())} test images): DarioNet recovers "
                f"{_pct(t.loc['darionet', 'gap_recovered'])} of the gap under its teacher and "
                f"{_pct(u.loc['darionet', 'gap_recovered'])} under {unseen}, which it never saw.\n\n"
                + _markdown(pd.DataFrame(rows)))
    return _per_profile("06", ("table2_judge_transfer.csv",), render)


def scale_sweep() -> str:
    """Notebook 06's scale sweep per profile: top-1 of every method at each downsampling factor."""
    def render(profile: str, file: Path) -> str:
        sweep = pd.read_csv(file)
        table = sweep.pivot(index="model", columns="scale", values="top1").loc[list(MODELS)]
        sizes = sweep.groupby("scale")["small_size"].first()
        frame = pd.DataFrame({"method": [display_name(m) for m in table.index],
                              **{f"{s} ({sizes[s]} px)": [f"{v:.3f}" for v in table[s]] for s in table.columns}})
        return f"`{profile}` (DarioNet trained at {sweep['trained_at'].iloc[0]} only):\n\n" + _markdown(frame)
    return _per_profile("06", ("scale_sweep.csv",), render)


def classifier_route() -> str:
    """Notebook 07's Table 3 per profile (the classifier fine-tuned instead of the SR net) and the costs of
    each route (``cost_frontier.csv``), with the answer they give."""
    def render(profile: str, file: Path, costs_file: Path) -> str:
        t3 = pd.read_csv(file).set_index("route")
        rows = [{"route": ROUTES.get(r, r), "top-1 (95% CI)": f"{t3.loc[r, 'top1']:.3f} ({t3.loc[r, 'top1_ci_low']:.3f}-"
                 f"{t3.loc[r, 'top1_ci_high']:.3f})", "agreement": f"{t3.loc[r, 'agreement']:.3f}",
                 "McNemar p vs (a)": _p(t3.loc[r, "p_vs_a"]), "vs (b)": _p(t3.loc[r, "p_vs_b"])} for r in t3.index]
        costs = pd.read_csv(costs_file).drop_duplicates("computation").set_index("computation")
        sr, cls = costs.loc["SR net + classifier"], costs.loc["bicubic + classifier"]
        cost_rows = [{"computation": name, "GFLOPs per image": f"{c['gflops_per_image']:.2f}",
                      "parameters (M)": f"{c['parameters'] / 1e6:.1f}", "images/s measured": f"{c['images_per_s']:.1f}"}
                     for name, c in costs.iterrows()]
        frontier = ", ".join(pd.read_csv(costs_file).query("on_frontier")["method"])
        return (
            f"`{profile}` ({int(t3['n_images'].max())} test images): (b) gets {t3.loc['b', 'top1']:.3f} against (a)'s "
            f"{t3.loc['a', 'top1']:.3f} (McNemar p = {_p(t3.loc['b', 'p_vs_a'])}); the SR route costs "
            f"{sr['gflops_per_image'] / cls['gflops_per_image']:.0f}x the FLOPs of the classifier route and ran "
            f"{cls['images_per_s'] / sr['images_per_s']:.0f}x slower in that run; on the cost frontier: {frontier}.\n\n"
            + _markdown(pd.DataFrame(rows)) + "\n" + _markdown(pd.DataFrame(cost_rows)))
    return _per_profile("07", ("table3_classifier_vs_sr.csv", "cost_frontier.csv"), render)


def routes_unseen() -> str:
    """Notebook 07's routes again under each unseen judge, per profile: whether (a) and (b) tie there."""
    parts = []
    for profile in _published_profiles():
        file = _figures(profile) / "table3_routes_unseen_judges.csv"
        if not file.is_file():
            parts.append(f"`{profile}`: its published run repeated no route under an unseen judge.\n")
            continue
        table = pd.read_csv(file)
        for judge, t in table.groupby("judge", sort=False):
            t3 = t.set_index("route")
            rows = [{"route": ROUTES.get(r, r).replace("classifier", judge),
                     "top-1 (95% CI)": f"{t3.loc[r, 'top1']:.3f} ({t3.loc[r, 'top1_ci_low']:.3f}-"
                     f"{t3.loc[r, 'top1_ci_high']:.3f})", "McNemar p vs (a)": _p(t3.loc[r, "p_vs_a"])}
                    for r in t3.index]
            parts.append(f"`{profile}`, judged by {judge} ({int(t3['n_images'].max())} test images): "
                         f"{tie_answer(t)}.\n\n" + _markdown(pd.DataFrame(rows)))
    return "\n".join(parts)


def super_categories() -> str:
    """Notebook 07's Table 4, both profiles side by side: DarioNet's top-1 gain over bicubic per super-category."""
    columns = {}
    for profile in _published_profiles():
        file = _figures(profile) / "table4_super_categories.csv"
        if file.is_file():
            t4 = pd.read_csv(file).set_index("group")
            columns[f"`{profile}`: images"] = t4["n_images"].astype(int).astype(str)
            columns[f"`{profile}`: gain (95% CI)"] = [
                f"{r.gain_darionet_vs_bicubic:+.2f} ({r.gain_ci_low_darionet_vs_bicubic:+.2f} to "
                f"{r.gain_ci_high_darionet_vs_bicubic:+.2f})" for r in t4.itertuples()]
    if not columns:
        return "No profile has run notebook 07.\n"
    frame = pd.DataFrame(columns).fillna("-")
    return _markdown(frame.rename_axis("super-category").reset_index()) + _dogs_tests()


def _dogs_tests() -> str:
    """The test of the report's claim that dogs gain less, per profile that wrote it (``dogs_test.csv``)."""
    lines = []
    for profile in _published_profiles():
        file = _figures(profile) / "dogs_test.csv"
        if file.is_file():
            test = pd.read_csv(file).iloc[0]
            lines.append(f"- `{profile}`: DarioNet's gain over bicubic is {100 * test['gain_dogs']:+.1f} points on the "
                         f"{int(test['n_dogs'])} dog images and {100 * test['gain_rest']:+.1f} on the "
                         f"{int(test['n_rest'])} others (one-sided permutation p = {test['p_value']:.2g}).")
    return "\nIs the gain smaller on dogs?\n\n" + "\n".join(lines) + "\n" if lines else ""


def checks_table() -> str:
    """The floors and windows ``make test`` holds the rerun's trained rows to (``dario_utils.runner.recorded``), with
    the margins measured over seeds and CPUs where ``notebooks/recorded_spread.json`` is committed."""
    from dario_utils.runner import recorded

    measured: dict[tuple[str, str], list[float]] = {}
    if recorded.SPREAD_FILE.is_file():
        for key, entry in json.loads(recorded.SPREAD_FILE.read_text()).get("margins", {}).items():
            measured.setdefault((entry["kind"], key.split("|")[-1]), []).extend(entry["values"])
    rows = []
    for kind, floors in recorded.MARGIN_FLOORS.items():
        for metric, floor in floors.items():
            values = measured.get((kind, metric))
            rows.append({"trained row": kind, "metric": metric, "margin over the untrained start at least": floor,
                         "measured over seeds and CPUs": f"{min(values):.3f}-{max(values):.3f}" if values else "-"})
    windows = [{"result": kind, "window around the recorded run": ", ".join(f"{m} ±{w}" for m, w in widths.items())}
               for kind, widths in recorded.TOLERANCES.items()]
    return _markdown(pd.DataFrame(rows)) + "\n" + _markdown(pd.DataFrame(windows))


def _markdown(frame: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines) + "\n"


BLOCKS: dict[str, Callable[[], str]] = {
    "headline": headline,
    "results-table": results_table,
    "crossval-table": crossval_table,
    "crossval-times": crossval_times,
    "two-teachers": two_teachers,
    "two-teachers-answer": two_teachers_answer,
    "scorings-table": scorings_table,
    "run-times": run_times,
    "module-table": module_table,
    "seeds-table": seeds_table,
    "variants-table": variants_table,
    "judge-transfer": judge_transfer,
    "scale-sweep": scale_sweep,
    "classifier-route": classifier_route,
    "routes-unseen": routes_unseen,
    "super-categories": super_categories,
    "checks-table": checks_table,
}
"""Every generated part of the pages, by the name its comments carry."""


def pages() -> list[Path]:
    """The README and every page of ``docs/``."""
    found = [paths.PROJECT_ROOT / "README.md"]
    return found + sorted((paths.PROJECT_ROOT / "docs").glob("*.md"))


def render(text: str) -> str:
    """``text`` with every block rewritten by its function (each called once); an unknown block name is a
    ValueError."""
    cache: dict[str, str] = {}

    def fill(match: re.Match) -> str:
        name = match.group(2)
        if name not in BLOCKS:
            raise ValueError(f"unknown generated block '{name}': known {', '.join(BLOCKS)}")
        if name not in cache:
            cache[name] = BLOCKS[name]()
        return match.group(1) + cache[name] + match.group(4)

    return BLOCK.sub(fill, text)


def stale_pages(files: Iterable[Path] | None = None) -> list[Path]:
    """The pages (default: :func:`pages`) whose generated blocks disagree with the committed files."""
    return [page for page in (pages() if files is None else files) if render(page.read_text()) != page.read_text()]


def broken_links(files: Iterable[Path] | None = None) -> list[str]:
    """``page: target`` for each relative link or image of the pages (default: :func:`pages`) whose file
    does not exist (web addresses and anchors within a page are not checked)."""
    broken = []
    for page in pages() if files is None else files:
        for target in LINK.findall(page.read_text()):
            path = target.split("#")[0]
            if path and "://" not in path and not path.startswith("mailto:") and not (page.parent / path).exists():
                broken.append(f"{page.name}: {target}")
    return broken


def headline_figure(target: Path = HEADLINE_FIGURE) -> Path:
    """The front page's figure: top-1 of the originals, bilinear, bicubic, the pretrained SR and DarioNet with
    their 95% intervals, for each published profile (and the cross-validated headline), beside the report's."""
    from dario_utils.figures.style import DPI, new_figure, PALETTE, PNG_METADATA, styled

    groups: dict[str, dict[str, tuple[float, float, float]]] = {}
    gaps: list[str] = []
    for profile in _published_profiles():
        table = _table1(profile)
        groups[f"{profile}\n(test split, {int(table['n_images'].max())} images)"] = {
            m: (table.loc[m, "top1"], table.loc[m, "top1_ci_low"], table.loc[m, "top1_ci_high"]) for m in MODELS}
        gaps.append(f"{_pct(_share(table['top1'], 'bicubic'))} of the gap vs bicubic")
    pooled = _crossval(HEADLINE_PROFILE)
    if pooled is not None:
        teacher = pooled[pooled["role"] == "teacher"].iloc[0]
        done, folds, _ = _crossval_folds(HEADLINE_PROFILE)
        folds_done = sorted((_figures(HEADLINE_PROFILE) / "crossval").glob("fold*/per_image.csv"))
        per_image = pd.concat(pd.read_csv(f) for f in folds_done)
        hits = per_image[per_image["judge"] == teacher.name].pivot(index="image", columns="model", values="top1")
        groups[f"{HEADLINE_PROFILE},\ncross-validated\n({done} of {folds} folds, {len(hits)} images)"] = {
            m: (hits[m].mean(), *_interval(hits[m].to_numpy())) for m in MODELS}
        gaps.append(f"{_pct(teacher['gap_vs_bicubic'])} of the gap vs bicubic")
    report = report_table1()["top1"]
    groups["the report\n(ResNet-50, ~25k images;\nno bicubic row)"] = {
        m: (report[m], np.nan, np.nan) for m in MODELS if m in report}
    gaps.append(f"{_pct(report_gap())} of the gap vs bilinear")
    with styled():
        fig = new_figure(10, 4.2)
        ax = fig.add_subplot()
        width = 0.8 / len(MODELS)
        for g, (label, values) in enumerate(groups.items()):
            for i, model in enumerate(MODELS):
                if model not in values:
                    continue
                top1, low, high = values[model]
                x = g + (i - (len(MODELS) - 1) / 2) * width
                ax.bar(x, top1, width, color=PALETTE[model], label=display_name(model) if g == 0 else None)
                if not np.isnan(low):
                    ax.errorbar(x, top1, yerr=[[top1 - low], [high - top1]], color="#333333", capsize=2, linewidth=0.8)
        for g, gap in enumerate(gaps):
            ax.text(g, 0.98, f"DarioNet recovers\n{gap}", ha="center", va="top", fontsize=8)
        ax.set_xticks(range(len(groups)), list(groups), fontsize=8)
        ax.grid(axis="x", visible=False)
        ax.set(ylabel="top-1 accuracy", ylim=(0, 1))
        ax.set_title("Top-1 on the originals and on 0.32x images brought back by each method (95% intervals)",
                     fontsize=10)
        fig.legend(loc="outside right upper")
        with fileio.atomic_path(target) as tmp:
            fig.savefig(tmp, format="png", dpi=DPI, metadata=PNG_METADATA)
        fig.clear()
    return target


def _interval(hits: np.ndarray) -> tuple[float, float]:
    """The 95% bootstrap interval of a top-1 over the images, as Table 1 of the headline profile draws it."""
    from dario_utils.core.metrics import bootstrap_interval

    config = load_config(HEADLINE_PROFILE)
    return bootstrap_interval(hits, config.eval.bootstrap, seed=config.seed)


def main(argv: list[str] | None = None) -> int:
    """Rewrite the pages' generated blocks and the front page's figure, or with ``--check`` list stale pages
    and broken links."""
    parser = argparse.ArgumentParser(prog="python -m dario_utils.runner.docs", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 where a page is stale")
    args = parser.parse_args(argv)
    if args.check:
        stale, broken = stale_pages(), broken_links()
        for page in stale:
            shown = page.relative_to(paths.PROJECT_ROOT) if page.is_relative_to(paths.PROJECT_ROOT) else page
            print(f"stale: {shown} disagrees with the committed results "
                  "(run make docs)", file=sys.stderr)
        for link in broken:
            print(f"broken link: {link}", file=sys.stderr)
        return 1 if stale or broken else 0
    for page in pages():
        fileio.write_text(page, render(page.read_text()))
    print(f"wrote {len(pages())} pages and {headline_figure().relative_to(paths.PROJECT_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
