"""An executed notebook made fit to commit: it changes only when a result does."""
from __future__ import annotations

import re
from pathlib import Path

KERNELSPEC = {"name": "python3", "display_name": "Python 3 (darionet)", "language": "python"}
"""The kernel ``make lab`` installs (the Makefile's ``--name`` and ``--display-name``); stored in
the committed notebooks so that opening them in JupyterLab changes nothing."""

_OVERWRITTEN = re.compile(r"^.*\r(?=[^\n])", re.MULTILINE)
"""A line's text up to its last carriage return not ending it (nbval's pattern: what a terminal overwrites)."""


def _coalesce_streams(outputs: list) -> list:
    """One output per stream name (``stdout``, ``stderr``) at its first place, with what carriage
    returns overwrite removed (as nbval compares them); empty stream outputs dropped."""
    kept, streams = [], {}
    for output in outputs:
        if output.output_type != "stream":
            kept.append(output)
        elif output.text and output.name in streams:
            streams[output.name].text += output.text
        elif output.text:
            streams[output.name] = output
            kept.append(output)
    for output in streams.values():
        output.text = _OVERWRITTEN.sub("", output.text)
    return kept


def clean_notebook(path: Path) -> None:
    """Make an executed notebook fit to commit: it changes only when a result does.

    Drops papermill's metadata and execution timestamps; stores :data:`KERNELSPEC`, so JupyterLab
    rewrites nothing on opening; drops empty stream outputs and merges each cell's stream
    outputs into one per stream, as a terminal shows it, so a progress bar (tqdm, on stderr)
    keeps only its last state. The stderr stream itself stays: ``make test`` compares outputs
    with strict nbval, which fails on a cell whose run writes to a stream the stored cell lacks;
    merged and rendered exactly as nbval does, the stored outputs compare as before.
    """
    import nbformat

    nb = nbformat.read(path, as_version=4)
    nb.metadata.pop("papermill", None)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.outputs = _coalesce_streams(cell.outputs)
    nbformat.write(nb, path)
