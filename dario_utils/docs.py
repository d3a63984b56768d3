"""The numbers of the README and ``docs/``, written by code from the committed result files.

A page marks each generated part with a pair of comments that GitHub does not render::

    <!-- begin: headline -->
    ...written by python -m dario_utils.docs...
    <!-- end: headline -->

:data:`BLOCKS` maps each name to the function that writes it from committed files only
(``figures/<profile>/``, ``data/report/``, ``figures/test_scorings.csv``, the package's own code),
so a number typed into a block by hand is replaced, and ``--check`` (run by ``make test``,
``tests/test_docs.py``) fails wherever a page disagrees with the files. ``make docs`` also draws
the front page's figure (:func:`headline_figure`).

    python -m dario_utils.docs [--check]
"""
from __future__ import annotations

import argparse
import ast
import json
import re
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from . import fileio, paths
from .config import load_config
from .report import report_gap, report_table1
from .study_models import MODELS, display_name

PAGES = ("README.md", "docs/*.md")
"""The pages whose blocks are generated, relative to the project root."""
BLOCK = re.compile(r"(<!-- begin: ([\w-]+) -->\n)(.*?)(<!-- end: \2 -->)", re.DOTALL)
HEADLINE_PROFILE = "imagenet-sample"
"""The profile whose cross-validated estimate is the study's headline."""
HEADLINE_FIGURE = paths.PROJECT_ROOT / "figures" / "headline.png"


def _figures(profile: str) -> Path:
    return paths.PROJECT_ROOT / "figures" / profile


def _published_profiles() -> list[str]:
    return sorted(p.name for p in (paths.PROJECT_ROOT / "figures").iterdir() if (p / "table1.csv").is_file())


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def _crossval(profile: str) -> pd.DataFrame | None:
    file = _figures(profile) / "crossval" / "crossval.csv"
    return pd.read_csv(file).set_index("judge") if file.is_file() else None


def _crossval_folds(profile: str) -> tuple[int, int]:
    """Folds done and folds in all, from the published fold table and the folds file."""
    folder = _figures(profile) / "crossval"
    folds = pd.read_csv(folder / "folds.csv")["fold"].nunique()
    return len(pd.read_csv(folder / "crossval_folds.csv")), folds


def headline() -> str:
    """The study's answer in one sentence: the cross-validated gap with its intervals, the unseen judges."""
    pooled = _crossval(HEADLINE_PROFILE)
    if pooled is None:
        return "The cross-validated estimate has not been published yet (`make crossval PROFILE=imagenet-sample`).\n"
    done, folds = _crossval_folds(HEADLINE_PROFILE)
    teacher = pooled[pooled["role"] == "teacher"].iloc[0]
    partial = "" if done == folds else (f" **So far {done} of {folds} folds are done, so this covers "
                                         f"{int(teacher['n_images'])} of the images; the rest follow.**")
    unseen = "; ".join(f"{judge} {_pct(row['gap_vs_bicubic'])} ({_pct(row['gap_vs_bicubic_low'])}-"
                       f"{_pct(row['gap_vs_bicubic_high'])})" for judge, row in pooled.iterrows()
                       if row["role"] != "teacher")
    return (f"On ImageNet images shrunk to 0.32x, DarioNet recovers **{_pct(teacher['gap_vs_bicubic'])}** "
            f"({_pct(teacher['gap_vs_bicubic_low'])}-{_pct(teacher['gap_vs_bicubic_high'])}, 95% bootstrap interval) "
            f"of the top-1 lost to downsampling against bicubic upscaling, and "
            f"{_pct(teacher['gap_vs_bilinear'])} ({_pct(teacher['gap_vs_bilinear_low'])}-"
            f"{_pct(teacher['gap_vs_bilinear_high'])}) against bilinear, the report's baseline (the report: "
            f"{_pct(report_gap())}), judged by its teacher EfficientNet-Lite0: {folds}-fold cross-validation over "
            f"the 499 images of `imagenet-sample`, each image scored once by a model that never trained on it."
            f"{partial} Judged by classifiers it never trained against (gap vs bicubic): {unseen}.\n")


def results_table() -> str:
    """Each published profile's Table 1 in one table: top-1 with its interval, and the gaps."""
    rows = []
    for profile in _published_profiles():
        table = pd.read_csv(_figures(profile) / "table1.csv").set_index("model")
        top1 = table["top1"]
        gaps = {ref: (top1["darionet"] - top1[ref]) / (top1["original"] - top1[ref]) for ref in ("bicubic", "bilinear")}
        rows.append({"profile": f"`{profile}`", "test images": int(table["n_images"].max()),
                     **{display_name(m): f"{top1[m]:.3f} ({table.loc[m, 'top1_ci_low']:.2f}-"
                                         f"{table.loc[m, 'top1_ci_high']:.2f})" for m in MODELS},
                     "gap vs bicubic": _pct(gaps["bicubic"]), "gap vs bilinear": _pct(gaps["bilinear"])})
    report = report_table1()["top1"]
    rows.append({"profile": "the report (ResNet-50, ILSVRC2012)", "test images": "about 25,000",
                 **{display_name(m): f"{report[m]:.3f}" if m in report else "-" for m in MODELS},
                 "gap vs bicubic": "-", "gap vs bilinear": _pct(report_gap())})
    return _markdown(pd.DataFrame(rows))


def crossval_table() -> str:
    """The cross-validated estimate under every judge."""
    pooled = _crossval(HEADLINE_PROFILE)
    if pooled is None:
        return "Not run yet.\n"
    rows = [{"judge": f"{judge} ({row['role']})", "images": int(row["n_images"]),
             **{f"top-1 {display_name(m)}": f"{row[f'top1_{m}']:.3f}" for m in MODELS},
             "gap vs bicubic": f"{_pct(row['gap_vs_bicubic'])} ({_pct(row['gap_vs_bicubic_low'])}-"
                               f"{_pct(row['gap_vs_bicubic_high'])})",
             "gap vs bilinear": f"{_pct(row['gap_vs_bilinear'])} ({_pct(row['gap_vs_bilinear_low'])}-"
                                f"{_pct(row['gap_vs_bilinear_high'])})",
             "McNemar vs bicubic": f"{int(row['mcnemar_bicubic_darionet_only'])}:{int(row['mcnemar_bicubic_other_only'])}",
             "McNemar vs its start": f"{int(row['mcnemar_start_darionet_only'])}:{int(row['mcnemar_start_other_only'])}"}
            for judge, row in pooled.iterrows()]
    return _markdown(pd.DataFrame(rows))


def scorings_table() -> str:
    """How many times each profile's test images were scored, and with how many recipes."""
    file = paths.PROJECT_ROOT / "figures" / "test_scorings.csv"
    if not file.is_file():
        return "No scoring logged yet.\n"
    log = pd.read_csv(file, dtype={"fold": str})
    rows = [{"profile": f"`{profile}`", "scorings logged": len(group), "recipes": group["recipe"].nunique(),
             "judges": ", ".join(sorted(group["judge"].unique())), "first": group["date"].min()[:10],
             "last": group["date"].max()[:10]} for profile, group in log.groupby("profile")]
    return _markdown(pd.DataFrame(rows))


def run_times() -> str:
    """Each published run's time per notebook and the machine it ran on, from its provenance."""
    rows = []
    for profile in _published_profiles():
        provenance = json.loads((_figures(profile) / "provenance.json").read_text())
        seconds = provenance.get("seconds")
        if not seconds:
            rows.append({"profile": f"`{profile}`", "notebooks": "not recorded by this run's version", "CPU": "-"})
            continue
        rows.append({"profile": f"`{profile}`",
                     "notebooks": ", ".join(f"{nb[:2]} {_minutes(s)}" for nb, s in seconds.items())
                                  + f"; in all {_minutes(sum(seconds.values()))}",
                     "CPU": f"{provenance.get('cpu', '?')}, {provenance.get('threads', '?')} threads"})
    return _markdown(pd.DataFrame(rows))


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def module_table() -> str:
    """Every module of the package with its line count and the first line of its docstring."""
    rows = []
    for file in sorted((paths.PROJECT_ROOT / "dario_utils").rglob("*.py")):
        source = file.read_text()
        doc = ast.get_docstring(ast.parse(source)) or ""
        rows.append({"module": f"`{file.relative_to(paths.PROJECT_ROOT).as_posix()}`",
                     "lines": len(source.splitlines()), "what it holds": doc.split("\n")[0]})
    return _markdown(pd.DataFrame(rows))


def _markdown(frame: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines) + "\n"


BLOCKS: dict[str, Callable[[], str]] = {
    "headline": headline,
    "results-table": results_table,
    "crossval-table": crossval_table,
    "scorings-table": scorings_table,
    "run-times": run_times,
    "module-table": module_table,
}
"""Every generated part of the pages, by the name its comments carry."""


def pages() -> list[Path]:
    """The README and every page of ``docs/``."""
    found = [paths.PROJECT_ROOT / "README.md"]
    return found + sorted((paths.PROJECT_ROOT / "docs").glob("*.md"))


def render(text: str) -> str:
    """``text`` with every block rewritten by its function; an unknown block name is a ValueError."""
    def fill(match: re.Match) -> str:
        name = match.group(2)
        if name not in BLOCKS:
            raise ValueError(f"unknown generated block '{name}': known {', '.join(BLOCKS)}")
        return match.group(1) + BLOCKS[name]() + match.group(4)

    return BLOCK.sub(fill, text)


def stale_pages() -> list[Path]:
    """The pages whose generated blocks disagree with the committed files."""
    return [page for page in pages() if render(page.read_text()) != page.read_text()]


def headline_figure(target: Path = HEADLINE_FIGURE) -> Path:
    """The front page's figure: top-1 of the originals, bilinear, bicubic, the pretrained SR and DarioNet with
    their 95% intervals, for each published profile (and the cross-validated headline), beside the report's."""
    from .style import DPI, PALETTE, PNG_METADATA, new_figure, styled

    groups: dict[str, dict[str, tuple[float, float, float]]] = {}
    for profile in _published_profiles():
        table = pd.read_csv(_figures(profile) / "table1.csv").set_index("model")
        groups[f"{profile}\n(test split, {int(table['n_images'].max())} images)"] = {
            m: (table.loc[m, "top1"], table.loc[m, "top1_ci_low"], table.loc[m, "top1_ci_high"]) for m in MODELS}
    pooled = _crossval(HEADLINE_PROFILE)
    if pooled is not None:
        teacher = pooled[pooled["role"] == "teacher"].iloc[0]
        done, folds = _crossval_folds(HEADLINE_PROFILE)
        folds_done = sorted((_figures(HEADLINE_PROFILE) / "crossval").glob("fold*/per_image.csv"))
        per_image = pd.concat(pd.read_csv(f) for f in folds_done)
        hits = per_image[per_image["judge"] == teacher.name].pivot(index="image", columns="model", values="top1")
        groups[f"{HEADLINE_PROFILE}, cross-validated\n({done} of {folds} folds, {len(hits)} images)"] = {
            m: (hits[m].mean(), *_interval(hits[m].to_numpy())) for m in MODELS}
    report = report_table1()["top1"]
    groups["the report\n(ResNet-50, ~25k images)"] = {m: (report[m], np.nan, np.nan) for m in MODELS if m in report}
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
        ax.set_xticks(range(len(groups)), list(groups), fontsize=8)
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
    from .metrics import bootstrap_interval

    config = load_config(HEADLINE_PROFILE)
    return bootstrap_interval(hits, config.eval.bootstrap, seed=config.seed)


def main(argv: list[str] | None = None) -> int:
    """Rewrite the pages' generated blocks and the front page's figure, or with ``--check`` list stale pages."""
    parser = argparse.ArgumentParser(prog="python -m dario_utils.docs", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 where a page is stale")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_pages()
        for page in stale:
            print(f"stale: {page.relative_to(paths.PROJECT_ROOT)} disagrees with the committed results "
                  "(run make docs)", file=sys.stderr)
        return 1 if stale else 0
    for page in pages():
        fileio.write_text(page, render(page.read_text()))
    print(f"wrote {len(pages())} pages and {headline_figure().relative_to(paths.PROJECT_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
