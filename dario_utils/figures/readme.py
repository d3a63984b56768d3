"""The README of a ``figures/<profile>/`` folder: each figure and table present, with its caption
(:mod:`dario_utils.figures.registry`), the command that made them and, from ``provenance.json``, what made them.

:func:`write_readme` is the one writer of that file; the runner (:mod:`dario_utils.runner.reproduce`)
calls it once at the end of a run, after writing ``provenance.json``.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from dario_utils.core.fileio import write_text
from dario_utils.core.paths import EXECUTED_NOTEBOOKS
from dario_utils.core.result_files import BEYOND_NOTEBOOKS
from dario_utils.figures.registry import FIGURES, TABLES
from dario_utils.models.study_models import display_name

PROVENANCE_FILE = "provenance.json"
"""What made a figures folder (``runs/<p>/figures/``, published as ``figures/<p>/``), written there by
:mod:`dario_utils.runner.reproduce`."""


def _file_caption(file_name: str) -> str | None:
    """Caption of a figure or table file of a figures folder (:mod:`dario_utils.figures.registry`); None for
    other files."""
    stem, suffix = Path(file_name).stem, Path(file_name).suffix
    if suffix == ".png" and stem.startswith("fig"):
        return FIGURES[stem].caption if stem in FIGURES else "Figure without a registered caption."
    if suffix == ".csv" and stem.startswith("per_class_"):
        model = display_name(stem.removeprefix("per_class_"))
        return f"Per-class precision, recall, F1 and support of the classifier on {model} images."
    table = TABLES.get(stem)
    return None if table is None else {".csv": table.caption, ".md": table.markdown}.get(suffix)


def reproduce_command(profile: str, data_root: str | None = None, beyond_apart: bool = False) -> str:
    """The command that remakes ``figures/<p>/``: the runner on ``profile`` (with ``--data-root DIR``
    where the run was given one) and, with ``beyond_apart`` (a profile whose notebooks beyond the
    report run on their own), the same with ``--only 06,07`` after it."""
    command = f"python -m dario_utils.runner.reproduce --profile {profile}" + (" --data-root DIR" if data_root else "")
    return command + (f" && {command} --only {','.join(BEYOND_NOTEBOOKS)}" if beyond_apart else "")


def by_figure_number(file_name: str) -> tuple[int, str]:
    """Sort key of a figures folder's file: figures by their number (fig2 before fig10), then the rest by name."""
    match = re.match(r"fig(\d+)", file_name)
    return (int(match[1]) if match else 1 << 30, file_name)


def _made_by(record: dict) -> list[str]:
    """The "Made by" section from a ``provenance.json`` record."""
    return [
        "## Made by",
        "",
        f"- profile `{record['profile']}`, data root `{record['data_root']}`, "
        f"manifests sha256 `{record['manifests_sha256']}`",
        f"- notebooks run: {', '.join(record['notebooks'])}",
        f"- Table 1 rows: {', '.join(display_name(m) for m in record['table1_models']) or 'none'}",
        f"- figures: {', '.join(record['figures']) or 'none'}",
        f"- commit `{record['commit']}`" + other_commits(record),
        f"- date {record['date']} (UTC)",
        "",
        f"The same in [{PROVENANCE_FILE}]({PROVENANCE_FILE}). The runner replaces this folder only with "
        "results of the same data that keep every row and figure, unless given `--overwrite`.",
    ]


def other_commits(record: dict) -> str:
    """Where a published folder's notebooks ran from other commits than its last run's: which."""
    others: dict[str, list[str]] = {}
    for nb, commit in sorted(record.get("commits", {}).items()):
        if commit != record["commit"]:
            others.setdefault(commit, []).append(nb[:2])
    if not others:
        return ""
    return " (" + "; ".join(f"{', '.join(nbs)} from `{commit}`" for commit, nbs in others.items()) + ")"


def write_readme(folder: Path, profile: str, command: str) -> Path:
    """Write ``folder/README.md`` (``folder``: the figures of ``profile``, made by ``command``): each
    figure and table present, captioned, then, where ``folder`` holds ``provenance.json``, a
    "Made by" section from it.

    Figures are listed by their PNG, with a link to the PDF where it exists. Apart from the
    commit and date lines the file changes only when the listed files, the command or the
    provenance do.
    """
    present = sorted((p.name for p in folder.iterdir()), key=by_figure_number) if folder.is_dir() else []
    lines = [
        f"# Figures and tables of profile `{profile}`",
        "",
        f"Made by `{command}`, from the result files in `runs/{profile}/` and the tables here.",
        "",
        "| file | shows |",
        "|---|---|",
    ]
    for name in present:
        caption = _file_caption(name)
        if caption is None:
            continue
        pdf = name.removesuffix(".png") + ".pdf"
        link = f"[{name}]({name})" + (f" ([pdf]({pdf}))" if name.endswith(".png") and pdf in present else "")
        lines.append(f"| {link} | {caption} |")
    executed = sorted((folder / EXECUTED_NOTEBOOKS).glob("*.ipynb"))
    if executed:
        lines += ["", "## The run's notebooks", "", "Executed as the run ran them, with their outputs:", ""]
        lines += [f"- [{nb.name}]({EXECUTED_NOTEBOOKS}/{nb.name})" for nb in executed]
    provenance = folder / PROVENANCE_FILE
    if provenance.is_file():
        lines += ["", *_made_by(json.loads(provenance.read_text()))]
    return write_text(folder / "README.md", "\n".join(lines) + "\n")
