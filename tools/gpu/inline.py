"""Run a notebook in this process, without Jupyter: the study runner's engine on the GPU machine.

:func:`execute_notebook` reads the ``.ipynb`` JSON with :mod:`json`, puts the parameters in a
new cell right after the one tagged ``parameters`` (tagged ``injected-parameters``, as papermill
does), and executes the code cells in order in one namespace, with the notebook's folder as
the working directory. It needs neither papermill, nbformat, nbclient, a kernel nor IPython:
``IPython.display`` (``display``, ``Markdown``, ``Image``, ``HTML``) is provided by a stand-in
where IPython is not installed, and routed to the executed copy where it is.

The executed copy is written after every cell (so a killed run leaves the cells it ran), with
each cell's outputs as Jupyter stores them: ``stream`` (stdout, stderr), ``display_data``,
``execute_result`` (the value of a cell's last expression) and ``error``. A cell that raises
stops the notebook with :class:`CellExecutionError`, which carries what papermill's
``PapermillExecutionError`` does (``cell_index`` in the executed copy, ``exec_count``,
``source``, ``ename``, ``evalue``), so the runner reports both engines' failures alike
(:mod:`tools.gpu.reproduce_inline` hands this engine to :func:`dario_utils.runner.execute.run`).
Cell magics and shell escapes (``%``, ``!``) are not supported.
"""
from __future__ import annotations

import ast
import base64
import contextlib
import gc
import io
import json
import linecache
import os
import signal
import sys
import threading
import time
import traceback
import types
from pathlib import Path
from typing import Any, Iterator

PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"


class CellExecutionError(RuntimeError):
    """A code cell raised: which cell, and what."""

    def __init__(self, cell_index: int, exec_count: int, source: str, ename: str, evalue: str,
                 traceback_lines: list[str]) -> None:
        super().__init__(f"cell {cell_index} (execution count {exec_count}): {ename}: {evalue}")
        self.cell_index, self.exec_count, self.source = cell_index, exec_count, source
        self.ename, self.evalue, self.traceback = ename, evalue, traceback_lines


class CellTimeoutError(TimeoutError):
    """A cell ran longer than the engine's ``execution_timeout``."""


# ---------------------------------------------------------------- rich output


def _source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def _figure_png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


def mime_bundle(obj: Any) -> dict[str, str]:
    """The Jupyter MIME bundle of ``obj``: its ``_repr_*_`` methods (images base64-encoded), a
    matplotlib Figure as PNG, always ``text/plain``."""
    data: dict[str, str] = {}
    bundle = getattr(obj, "_repr_mimebundle_", None)
    if callable(bundle):
        with contextlib.suppress(Exception):
            found = bundle()
            found = found[0] if isinstance(found, tuple) else found
            for mime, value in (found or {}).items():
                data[mime] = base64.b64encode(value).decode() if isinstance(value, bytes) else value
    for mime, method in (("text/html", "_repr_html_"), ("text/markdown", "_repr_markdown_"),
                         ("image/png", "_repr_png_"), ("image/jpeg", "_repr_jpeg_"), ("text/latex", "_repr_latex_")):
        if mime in data or not callable(getattr(obj, method, None)):
            continue
        with contextlib.suppress(Exception):
            value = getattr(obj, method)()
            value = value[0] if isinstance(value, tuple) else value
            if value is not None:
                data[mime] = base64.b64encode(value).decode() if isinstance(value, bytes) else value
    if type(obj).__module__.startswith("matplotlib") and hasattr(obj, "savefig") and "image/png" not in data:
        data["image/png"] = base64.b64encode(_figure_png(obj)).decode()
    data.setdefault("text/plain", repr(obj))
    return data


class _Output:
    """Where the cell being executed puts its outputs."""

    cell: dict | None = None

    @classmethod
    def add(cls, output: dict) -> None:
        if cls.cell is not None:
            cls.cell["outputs"].append(output)


def display(*objs: Any, **kwargs: Any) -> None:
    """``IPython.display.display``: each object as a ``display_data`` output of the running cell."""
    for obj in objs:
        _Output.add({"output_type": "display_data", "data": mime_bundle(obj), "metadata": {}})


class _DisplayObject:
    """The part of ``IPython.display``'s objects the notebooks use."""

    def __init__(self, data: Any = None, **kwargs: Any) -> None:
        self.data = data
        self.kwargs = kwargs

    def __repr__(self) -> str:
        return f"<{type(self).__name__} object>"


class Markdown(_DisplayObject):
    def _repr_markdown_(self) -> str:
        return self.data


class HTML(_DisplayObject):
    def _repr_html_(self) -> str:
        return self.data


class Image(_DisplayObject):
    """``IPython.display.Image(data=bytes, format="png"|"jpeg")`` (or ``filename=``)."""

    def __init__(self, data: bytes | None = None, format: str = "png", filename: str | None = None,
                 **kwargs: Any) -> None:
        if data is None and filename:
            data = Path(filename).read_bytes()
            format = Path(filename).suffix.lstrip(".").lower().replace("jpg", "jpeg") or format
        super().__init__(data, **kwargs)
        self.format = "jpeg" if format in ("jpg", "jpeg") else format

    def _repr_png_(self) -> bytes | None:
        return self.data if self.format == "png" else None

    def _repr_jpeg_(self) -> bytes | None:
        return self.data if self.format == "jpeg" else None


def _ipython_available() -> bool:
    try:
        import IPython.display  # noqa: F401
    except ImportError:
        return False
    return True


@contextlib.contextmanager
def _display_hooks(stand_in: bool) -> Iterator[None]:
    """``from IPython.display import display, Markdown, Image`` inside the cells: the stand-in
    module where IPython is missing (or ``stand_in``), else IPython's own classes with
    ``display`` routed to the executed copy."""
    saved = {name: sys.modules.get(name) for name in ("IPython", "IPython.display")}
    patched: list[tuple[Any, str, Any]] = []
    if stand_in or not _ipython_available():
        package = types.ModuleType("IPython")
        module = types.ModuleType("IPython.display")
        module.__doc__ = "tools.gpu.inline's stand-in for IPython.display"
        for name, value in {"display": display, "Markdown": Markdown, "HTML": HTML, "Image": Image}.items():
            setattr(module, name, value)
        package.display = module  # type: ignore[attr-defined]
        package.__path__ = []  # a package, so "import IPython.display" works
        # what libraries that look for a running IPython (matplotlib, tqdm) read: there is none
        package.get_ipython = lambda: None  # type: ignore[attr-defined]
        package.version_info = (9, 0, 0, "stand-in")  # type: ignore[attr-defined]
        sys.modules["IPython"], sys.modules["IPython.display"] = package, module
    else:
        import IPython.display as ipython_display

        targets = [ipython_display]
        with contextlib.suppress(ImportError):
            import IPython.core.display_functions as functions

            targets.append(functions)
        for target in targets:
            patched.append((target, "display", target.display))
            target.display = display  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for target, name, value in patched:
            setattr(target, name, value)
        if not patched:
            for name, module in saved.items():
                if module is None:
                    sys.modules.pop(name, None)
                else:
                    sys.modules[name] = module


# ---------------------------------------------------------------- streams and time limits


class _Stream(io.TextIOBase):
    """A text stream that appends what is written to the running cell's ``stream`` output."""

    def __init__(self, name: str) -> None:
        self.name = name

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        cell = _Output.cell
        if text and cell is not None:
            outputs = cell["outputs"]
            if outputs and outputs[-1].get("output_type") == "stream" and outputs[-1]["name"] == self.name:
                outputs[-1]["text"] += text
            else:
                outputs.append({"output_type": "stream", "name": self.name, "text": text})
        return len(text)


@contextlib.contextmanager
def _time_limit(seconds: float | None) -> Iterator[None]:
    """Raise :class:`CellTimeoutError` in the cell after ``seconds`` (main thread, POSIX only)."""
    if not seconds or threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGALRM"):
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise CellTimeoutError(f"the cell ran longer than {seconds:g} s (execution timeout)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def _working_directory(folder: Path | None) -> Iterator[None]:
    previous = os.getcwd()
    if folder is not None:
        os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


# ---------------------------------------------------------------- execution


def parameters_source(parameters: dict[str, Any]) -> str:
    """The injected cell's code: one assignment per parameter (values as Python literals)."""
    return "# Parameters\n" + "".join(f"{name} = {value!r}\n" for name, value in parameters.items())


def inject_parameters(nb: dict, parameters: dict[str, Any]) -> dict:
    """``nb`` with a cell assigning ``parameters`` after the cell tagged ``parameters`` (first
    if none is tagged); an earlier injected cell is replaced. No parameters: ``nb`` unchanged."""
    if not parameters:
        return nb
    cells = [c for c in nb["cells"] if INJECTED_TAG not in c.get("metadata", {}).get("tags", [])]
    tagged = [i for i, c in enumerate(cells) if PARAMETERS_TAG in c.get("metadata", {}).get("tags", [])]
    injected = {"cell_type": "code", "execution_count": None, "metadata": {"tags": [INJECTED_TAG]},
                "outputs": [], "source": parameters_source(parameters)}
    position = tagged[0] + 1 if tagged else 0
    return {**nb, "cells": cells[:position] + [injected] + cells[position:]}


def _run_cell(code: str, namespace: dict, filename: str) -> Any:
    """Execute ``code``; return the value of its last statement if that is an expression, else None."""
    linecache.cache[filename] = (len(code), None, code.splitlines(keepends=True), filename)  # for tracebacks
    tree = ast.parse(code, filename=filename)
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
    exec(compile(tree, filename, "exec"), namespace)
    return eval(compile(last, filename, "eval"), namespace) if last is not None else None


def _write(nb: dict, out: Path) -> None:
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    tmp.replace(out)


def _error_lines(err: BaseException, filename: str) -> list[str]:
    """The traceback from the cell's own frame on (the engine's frames left out)."""
    tb = err.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != filename:
        tb = tb.tb_next
    return traceback.format_exception(type(err), err, tb)


def _free_memory() -> None:
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def execute_notebook(input_path: str | Path, output_path: str | Path, parameters: dict[str, Any] | None = None,
                     cwd: str | Path | None = None, execution_timeout: float | None = None,
                     stand_in_display: bool = False, **ignored: Any) -> dict:
    """Execute the notebook at ``input_path`` in this process and write the executed copy to
    ``output_path``; return it (a dict in nbformat 4's JSON layout).

    ``parameters`` are injected after the ``parameters`` cell; ``cwd`` is the working directory
    of the cells; ``execution_timeout`` is each cell's limit in seconds. Raises
    :class:`CellExecutionError` at the first cell that raises (the executed copy then holds its
    error output). Keyword arguments of papermill's ``execute_notebook`` that do not apply
    here (``kernel_name``, ``progress_bar``, ``log_output``) are accepted and ignored.
    """
    source, out = Path(input_path), Path(output_path)
    nb = inject_parameters(json.loads(source.read_text()), dict(parameters or {}))
    nb.setdefault("metadata", {})["dario_inline"] = {"engine": "tools.gpu.inline", "parameters": parameters or {},
                                                     "input_path": str(source)}
    for cell in nb["cells"]:  # as papermill does: no output or count of an earlier run survives
        if cell.get("cell_type") == "code":
            cell["execution_count"], cell["outputs"] = None, []
    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": __builtins__}
    os.environ.setdefault("MPLBACKEND", "Agg")
    count = 0
    try:
        with _display_hooks(stand_in_display), _working_directory(Path(cwd) if cwd else None), \
                contextlib.redirect_stdout(_Stream("stdout")), contextlib.redirect_stderr(_Stream("stderr")):
            for index, cell in enumerate(nb["cells"]):
                if cell.get("cell_type") != "code":
                    continue
                count += 1
                cell["execution_count"], cell["outputs"] = count, []
                code = _source(cell)
                filename = f"<{source.name} cell {index}>"
                _Output.cell = cell
                start = time.perf_counter()
                try:
                    with _time_limit(execution_timeout):
                        value = _run_cell(code, namespace, filename)
                    if value is not None:
                        cell["outputs"].append({"output_type": "execute_result", "execution_count": count,
                                                "data": mime_bundle(value), "metadata": {}})
                except Exception as err:  # noqa: BLE001: every failure of a cell is reported as the cell's
                    lines = _error_lines(err, filename)
                    cell["outputs"].append({"output_type": "error", "ename": type(err).__name__,
                                            "evalue": str(err), "traceback": lines})
                    raise CellExecutionError(index, count, code, type(err).__name__, str(err), lines) from err
                finally:
                    _Output.cell = None
                    cell.setdefault("metadata", {})["execution"] = {"seconds": round(time.perf_counter() - start, 3)}
                    _write(nb, out)
    finally:
        namespace.clear()
        _free_memory()
    return nb
