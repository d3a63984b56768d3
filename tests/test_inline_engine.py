"""Tests of the runner's in-process engine (tools/gpu/inline.py), used where papermill is not
installed (the GPU machine): parameters injected after the tagged cell, outputs stored as
Jupyter does, a failing cell named as papermill names it, no Jupyter package imported; and of
the runner without papermill."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dario_utils.core import paths
from dario_utils.core.config import ConfigError
from dario_utils.core.paths import RunLayout
from dario_utils.runner import execute, reproduce
from dario_utils.runner.execute import RunOptions

sys.path.insert(0, str(paths.PROJECT_ROOT))  # tools/ is no installed package: import it from this checkout
from tools.gpu import inline  # noqa: E402
from tools.gpu.reproduce_inline import ENGINE  # noqa: E402


def code(source: str, tags: list[str] | None = None) -> dict:
    return {"cell_type": "code", "execution_count": None, "metadata": {"tags": tags or []}, "outputs": [],
            "source": source}


def write_notebook(path: Path, cells: list[dict]) -> Path:
    """A notebook in nbformat 4's JSON layout, written with json alone."""
    nb = {"nbformat": 4, "nbformat_minor": 5, "cells": [
        {"cell_type": "markdown", "metadata": {}, "source": "# a test notebook"},
        code('profile = "demo"\ndata_root = None\ndevice = None\noutput_root = None\nprogress = False', ["parameters"]),
        *cells], "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}}
    path.write_text(json.dumps(nb))
    return path


def test_parameters_are_injected_after_the_tagged_cell_and_outputs_stored(tmp_path: Path):
    source = write_notebook(tmp_path / "nb.ipynb", [
        code("import os\nprint('profile', profile, 'device', device)\nprint('cwd', os.getcwd())"),
        code("from IPython.display import Markdown, display\ndisplay(Markdown('**bold**'))\n"
             "import sys\nprint('warned', file=sys.stderr)"),
        code("import pandas as pd\npd.DataFrame({'a': [1, 2]})"),
        code("x = 1  # no output"),
    ])
    out = tmp_path / "out.ipynb"
    (tmp_path / "work").mkdir()
    before = os.getcwd()
    nb = inline.execute_notebook(source, out, parameters={"profile": "imagenet-sample", "device": "cpu"},
                                 cwd=tmp_path / "work", execution_timeout=60)
    assert os.getcwd() == before
    assert json.loads(out.read_text()) == nb
    cells = nb["cells"]
    assert "parameters" in cells[1]["metadata"]["tags"]
    assert cells[2]["metadata"]["tags"] == ["injected-parameters"]
    assert cells[2]["source"] == "# Parameters\nprofile = 'imagenet-sample'\ndevice = 'cpu'\n"
    assert [c["execution_count"] for c in cells if c["cell_type"] == "code"] == [1, 2, 3, 4, 5, 6]
    printed = cells[3]["outputs"]
    assert printed[0] == {"output_type": "stream", "name": "stdout",
                          "text": f"profile imagenet-sample device cpu\ncwd {tmp_path / 'work'}\n"}
    shown = cells[4]["outputs"]
    assert shown[0]["output_type"] == "display_data" and shown[0]["data"]["text/markdown"] == "**bold**"
    assert shown[1] == {"output_type": "stream", "name": "stderr", "text": "warned\n"}
    result = cells[5]["outputs"][0]
    assert result["output_type"] == "execute_result" and "<table" in result["data"]["text/html"]
    assert "a" in result["data"]["text/plain"]
    assert cells[6]["outputs"] == []


def test_figures_and_images_become_png_and_jpeg_outputs(tmp_path: Path):
    source = write_notebook(tmp_path / "nb.ipynb", [
        code("from matplotlib.figure import Figure\nfig = Figure()\nfig.add_subplot().plot([1, 2])\nfig"),
        code("import io\nfrom PIL import Image as P\nb = io.BytesIO()\nP.new('RGB', (4, 4)).save(b, 'JPEG')\n"
             "from IPython.display import Image\nImage(data=b.getvalue(), format='jpeg')"),
    ])
    nb = inline.execute_notebook(source, tmp_path / "out.ipynb", stand_in_display=True)
    figure, image = (c["outputs"][0]["data"] for c in nb["cells"][2:])
    assert figure["image/png"].startswith("iVBOR")  # base64 of the PNG signature
    assert image["image/jpeg"].startswith("/9j/")  # base64 of the JPEG signature


def test_a_failing_cell_is_named_and_later_cells_do_not_run(tmp_path: Path):
    never = code("print('never reached')")
    never.update(execution_count=7, outputs=[{"output_type": "stream", "name": "stdout", "text": "an old run\n"}])
    source = write_notebook(tmp_path / "nb.ipynb", [
        code("print('before')"),
        code("def f():\n    raise ValueError('boom')\nf()"),
        never,
    ])
    out = tmp_path / "out.ipynb"
    with pytest.raises(inline.CellExecutionError) as caught:
        inline.execute_notebook(source, out, parameters={"profile": "demo"})
    err = caught.value
    executed = json.loads(out.read_text())
    assert (err.ename, err.evalue) == ("ValueError", "boom")
    assert executed["cells"][err.cell_index]["source"].startswith("def f()")  # index in the executed copy
    assert err.exec_count == 4 and executed["cells"][err.cell_index]["execution_count"] == 4
    error = executed["cells"][err.cell_index]["outputs"][-1]
    assert error["output_type"] == "error" and "raise ValueError('boom')" in "".join(error["traceback"])
    assert executed["cells"][-1]["outputs"] == [] and executed["cells"][-1]["execution_count"] is None


def test_a_cell_over_the_time_limit_fails_with_a_timeout(tmp_path: Path):
    source = write_notebook(tmp_path / "nb.ipynb", [code("import time\ntime.sleep(5)")])
    with pytest.raises(inline.CellExecutionError) as caught:
        inline.execute_notebook(source, tmp_path / "out.ipynb", execution_timeout=0.5)
    assert caught.value.ename == "CellTimeoutError" and "0.5 s" in caught.value.evalue


def test_runner_reports_an_inline_failure_like_papermill(tmp_path: Path, output_root: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    write_notebook(notebooks / "01_fail.ipynb", [
        code("from dario_utils.core.paths import RunLayout\n"
             "(RunLayout(profile, output_root).figures / 'table1.md').write_text('x')"),
        code('raise ValueError("boom")'),
    ])
    write_notebook(notebooks / "02_never.ipynb", [code("x = 1")])
    monkeypatch.setattr(paths, "NOTEBOOKS_DIR", notebooks)
    figures = output_root / "figures" / "demo"
    figures.mkdir(parents=True)
    (figures / "table1.md").write_text("previous complete results")
    environment = dict(os.environ)

    result = execute.run(RunOptions("demo", timeout=60, output_root=output_root), engine=ENGINE)
    assert result.code == 1 and result.seconds == {}
    captured = capsys.readouterr()
    executed = output_root / "runs" / "demo" / "notebooks" / "01_fail.ipynb"
    nb = json.loads(executed.read_text())
    failing = next(i for i, c in enumerate(nb["cells"]) if 'raise ValueError("boom")' in "".join(c["source"]))
    assert (f"error: notebook 01_fail.ipynb failed in cell {failing} (execution count "
            f"{nb['cells'][failing]['execution_count']}): ValueError: boom") in captured.err
    assert str(executed) in captured.err and "02_never" not in captured.out + captured.err
    assert (figures / "table1.md").read_text() == "previous complete results"
    assert (RunLayout("demo", output_root).figures / "table1.md").read_text() == "x"  # the failed run's, unpublished
    changed = {k for k in os.environ.keys() | environment.keys() if os.environ.get(k) != environment.get(k)}
    assert changed <= {"MPLBACKEND"}  # the runner leaves no variable behind (the engine sets matplotlib's)


def test_without_papermill_the_runner_says_what_to_do(output_root: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture):
    monkeypatch.setitem(sys.modules, "papermill", None)  # not importable
    assert reproduce.main(["--profile", "demo"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: papermill is not installed") and "make install" in err and "tools/gpu" in err
    assert not output_root.exists()
    with pytest.raises(ConfigError, match="--in-place"):
        execute.run(RunOptions("demo", in_place=True, output_root=output_root), engine=ENGINE)


def test_without_any_jupyter_package_the_inline_runner_runs(tmp_path: Path):
    """papermill, nbformat, nbclient and IPython unimportable (as on the GPU machine): the runner
    with the inline engine runs, the notebooks' IPython.display imports get the stand-in, none of
    those packages is imported, and its result (code, seconds per notebook) is written as JSON."""
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    write_notebook(notebooks / "01_ok.ipynb", [
        code("from IPython.display import Markdown, display\ndisplay(Markdown('*hello* ' + profile))")])
    result = tmp_path / "result.json"
    script = textwrap.dedent(f"""
        import sys
        for name in ("papermill", "nbformat", "nbclient", "IPython", "jupyter_client", "ipykernel"):
            sys.modules[name] = None
        from pathlib import Path
        from dario_utils.core import paths
        from tools.gpu import reproduce_inline
        paths.NOTEBOOKS_DIR = Path({str(notebooks)!r})
        code = reproduce_inline.main(["--profile", "demo", "--timeout", "60", "--result", {str(result)!r}])
        loaded = [n for n in ("papermill", "nbformat", "nbclient", "IPython") if sys.modules.get(n) is not None]
        print("exit", code, "loaded", loaded)
    """)
    env = {**os.environ, "DARIO_OUTPUT_ROOT": str(tmp_path / "out")}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120,
                          cwd=paths.PROJECT_ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "engine inline" in done.stdout and "exit 0 loaded []" in done.stdout
    executed = json.loads((tmp_path / "out" / "runs" / "demo" / "notebooks" / "01_ok.ipynb").read_text())
    assert executed["cells"][-1]["outputs"][0]["data"]["text/markdown"] == "*hello* demo"
    recorded = json.loads(result.read_text())
    assert recorded["code"] == 0 and list(recorded["seconds"]) == ["01_ok"] and recorded["seconds"]["01_ok"] >= 0
    assert (tmp_path / "out" / "figures" / "demo" / "provenance.json").is_file()  # published


def test_the_study_package_never_imports_tools():
    for module in sorted((paths.PROJECT_ROOT / "dario_utils").rglob("*.py")):
        source = module.read_text()
        assert "import tools" not in source and "from tools" not in source, module
