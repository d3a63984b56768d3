"""Tests of the papermill runner (dario_utils.runner: reproduce, the CLI; execute, the loop; clean):
notebook selection, errors as one line with exit code 2, the notebooks given the output root and
progress as parameters, a failing notebook named with its cell while figures/<profile>/
keeps the previous complete results, and notebooks cleaned for committing (the kernel
`make lab` installs, outputs as strict nbval compares them)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from dario_utils.core import paths
from dario_utils.core.config import ConfigError
from dario_utils.core.paths import RunLayout
from dario_utils.runner import clean, execute, reproduce
from dario_utils.runner.execute import RunOptions


def test_notebooks_are_numbered_and_ordered():
    found = execute.notebooks()
    names = [nb.name for nb in found]
    assert names == sorted(names) and len(names) == 7
    assert [n[:2] for n in names] == ["01", "02", "03", "04", "05", "06", "07"]
    assert all(nb.parent == paths.NOTEBOOKS_DIR for nb in found)


def test_only_selects_the_listed_notebooks():
    assert [nb.name for nb in execute.notebooks(["01"])] == ["01_data_split.ipynb"]
    assert [nb.name[:2] for nb in execute.notebooks(["04", "02"])] == ["02", "04"]


def test_only_unknown_number_is_config_error():
    with pytest.raises(ConfigError) as err:
        execute.notebooks(["01", "09"])
    assert "09" in str(err.value) and "01, 02, 03, 04, 05" in str(err.value)


def test_main_only_unknown_number_exits_2(output_root: Path, capsys: pytest.CaptureFixture):
    assert reproduce.main(["--profile", "demo", "--only", "9"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "09" in err


def test_main_unknown_profile_exits_2_with_one_line(output_root: Path, capsys: pytest.CaptureFixture):
    assert reproduce.main(["--profile", "no-such-profile"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: ") and "no-such-profile" in lines[0] and "demo" in lines[0]
    assert captured.out == ""
    assert not output_root.exists()


def test_in_place_only_for_demo(output_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture):
    assert reproduce.main(["--profile", "imagenet-sample", "--data-root", str(tmp_path), "--in-place"]) == 2
    assert "--in-place" in capsys.readouterr().err


def test_the_command_line_reads_the_output_root_once_from_the_environment(output_root: Path,
                                                                          monkeypatch: pytest.MonkeyPatch):
    options = reproduce.parse_options(["--profile", "demo", "--only", "1,2"])
    assert options.output_root == output_root.resolve() and options.only == ["01", "02"]
    monkeypatch.delenv("DARIO_OUTPUT_ROOT")
    assert reproduce.parse_options([]).output_root == paths.PROJECT_ROOT


def test_in_place_refuses_an_output_root_its_notebooks_would_not_see(output_root: Path, tmp_path: Path):
    """--in-place runs the notebooks with their own parameters, whose output root is DARIO_OUTPUT_ROOT's."""
    with pytest.raises(ConfigError, match="DARIO_OUTPUT_ROOT"):
        execute.run(RunOptions("demo", in_place=True, output_root=tmp_path / "elsewhere"))
    assert not (tmp_path / "elsewhere").exists()


def _write_notebook(path: Path, cells: list) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell('profile = "demo"\ndata_root = None\ndevice = None\noutput_root = None\n'
                                       'progress = False')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# a test notebook"), params, *cells]
    nbformat.write(nb, path)


def test_failing_notebook_is_named_with_its_cell_and_figures_are_kept(
        tmp_path: Path, output_root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    _write_notebook(notebooks / "01_fail.ipynb", [
        nbformat.v4.new_code_cell(
            "from dario_utils.core.paths import RunLayout\n"
            "(RunLayout(profile, output_root).figures / 'table1.md').write_text('half-finished run')\n"
            "print('profile', profile)"),
        nbformat.v4.new_code_cell('raise ValueError("boom")'),
        nbformat.v4.new_code_cell('print("never reached")'),
    ])
    _write_notebook(notebooks / "02_never.ipynb", [nbformat.v4.new_code_cell("x = 1")])
    monkeypatch.setattr(paths, "NOTEBOOKS_DIR", notebooks)

    figures = output_root / "figures" / "demo"
    figures.mkdir(parents=True)
    (figures / "table1.md").write_text("previous complete results")
    (figures / "fig1.png").write_bytes(b"\x89PNG previous")
    environment = dict(os.environ)

    result = execute.run(RunOptions("demo", timeout=120, output_root=output_root))
    captured = capsys.readouterr()
    assert result.code == 1 and result.seconds == {}
    assert "01_fail.ipynb" in captured.err and "boom" in captured.err and "ValueError" in captured.err
    assert "02_never" not in captured.out + captured.err  # the run stopped at the first failure
    executed = output_root / "runs" / "demo" / "notebooks" / "01_fail.ipynb"
    assert str(executed) in captured.err
    assert not (output_root / "runs" / "demo" / "notebooks" / "02_never.ipynb").exists()

    # the cell named in the message is the one that raised, in the executed copy it points to
    # (cell index as executed, before papermill adds its error-marker cells; the execution
    # count is the "In [n]" shown when the executed copy is opened)
    nb = nbformat.read(executed, as_version=4)
    cells = [c for c in nb.cells if "papermill-error-cell-tag" not in c.metadata.get("tags", [])]
    failing = [i for i, cell in enumerate(cells) if 'raise ValueError("boom")' in cell.source]
    assert len(failing) == 1
    assert f"cell {failing[0]} " in captured.err
    assert f"(execution count {cells[failing[0]].execution_count})" in captured.err
    assert any("profile demo" in out.get("text", "") for cell in nb.cells for out in cell.get("outputs", []))

    # figures/demo/ is exactly as before (the half-finished table is in the run's own folder only);
    # the runner leaves no environment variable behind
    assert sorted(p.name for p in figures.iterdir()) == ["fig1.png", "table1.md"]
    assert (figures / "table1.md").read_text() == "previous complete results"
    assert (figures / "fig1.png").read_bytes() == b"\x89PNG previous"
    assert (RunLayout("demo", output_root).figures / "table1.md").read_text() == "half-finished run"
    assert dict(os.environ) == environment


def _recording(seen: list[dict]):
    """A stand-in for papermill that records each notebook's parameters and writes its executed copy unchanged."""
    def execute_notebook(source: str, executed: str, parameters: dict, **kwargs) -> None:
        seen.append(parameters)
        shutil.copyfile(source, executed)
    return execute_notebook


def test_relative_data_root_reaches_the_notebooks_as_an_absolute_path(output_root: Path, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch):
    """The notebooks run in notebooks/, so a data root relative to the caller must be made absolute."""
    (tmp_path / "data").mkdir()
    monkeypatch.chdir(tmp_path)
    seen = []
    monkeypatch.setattr("papermill.execute_notebook", _recording(seen))
    assert execute.run(RunOptions("imagenet-sample", data_root="data", only=["01"], output_root=output_root)).code == 0
    assert seen == [{"profile": "imagenet-sample", "data_root": str(tmp_path / "data"), "device": None,
                     "output_root": str(output_root), "progress": False}]


def test_kernelspec_is_the_one_make_lab_installs():
    """The notebooks store the kernel `make lab` installs, or JupyterLab rewrites them on opening."""
    makefile = (paths.PROJECT_ROOT / "Makefile").read_text()
    match = re.search(r'ipykernel install .*--name (\S+) --display-name "([^"]+)"', makefile)
    assert match, "the Makefile installs no named kernel"
    assert (match[1], match[2]) == (clean.KERNELSPEC["name"], clean.KERNELSPEC["display_name"])


def _stream(name: str, text: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_output("stream", name=name, text=text)


def test_clean_notebook_stores_the_kernel_and_outputs_as_nbval_compares_them(tmp_path: Path):
    from nbval.plugin import coalesce_streams, transform_streams_for_comparison

    bar = ["\rtrain:   0%|          | 0/2 [00:00<?, ?batch/s]", "\rtrain:  50%|#####     | 1/2 [00:01<00:01]",
           "\rtrain: 100%|##########| 2/2 [00:02<00:00]", "\r                              ", "\r"]
    outputs = [_stream("stderr", bar[0]), _stream("stdout", "epoch 1: loss 0.5\n"),
               *(_stream("stderr", b) for b in bar[1:]), _stream("stdout", ""), _stream("stdout", "epoch 2: loss 0.4\n"),
               nbformat.v4.new_output("display_data", data={"text/plain": "<Figure>"}),
               _stream("stderr", "\revaluate: 100%|##########| 3/3\n")]
    nb = nbformat.v4.new_notebook()
    nb.metadata.update(kernelspec={"name": "python3", "display_name": "Python 3", "language": "python"},
                       papermill={"duration": 1.5})
    cell = nbformat.v4.new_code_cell("train()", execution_count=1, outputs=outputs)
    cell.metadata.update(papermill={"duration": 1.0}, execution={"iopub.status.busy": "2025-01-01T00:00:00"},
                         tags=["x"])
    empty = nbformat.v4.new_code_cell("pass", execution_count=2, outputs=[_stream("stdout", "")])
    nb.cells = [nbformat.v4.new_markdown_cell("# title"), cell, empty]
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)

    clean.clean_notebook(path)
    cleaned = nbformat.read(path, as_version=4)
    assert cleaned.metadata["kernelspec"] == clean.KERNELSPEC == {
        "name": "python3", "display_name": "Python 3 (darionet)", "language": "python"}
    assert "papermill" not in cleaned.metadata
    assert dict(cleaned.cells[1].metadata) == {"tags": ["x"]}
    # one output per stream, at its first place; a progress bar keeps only what the terminal shows
    assert [(o.output_type, o.get("name")) for o in cleaned.cells[1].outputs] == [
        ("stream", "stderr"), ("stream", "stdout"), ("display_data", None)]
    stderr, stdout, _ = cleaned.cells[1].outputs
    assert stdout.text == "epoch 1: loss 0.5\nepoch 2: loss 0.4\n"
    assert stderr.text == "evaluate: 100%|##########| 3/3\n"
    assert cleaned.cells[2].outputs == []
    # strict nbval compares the cleaned cell exactly as it compared the executed one
    assert (transform_streams_for_comparison(coalesce_streams(cleaned.cells[1].outputs))
            == transform_streams_for_comparison(coalesce_streams([nbformat.from_dict(o) for o in outputs])))
    clean.clean_notebook(path)
    assert nbformat.read(path, as_version=4) == cleaned


def test_in_place_refresh_passes_strict_nbval(tmp_path: Path, output_root: Path, monkeypatch: pytest.MonkeyPatch):
    """A notebook refreshed by --in-place stores no progress bars (its progress parameter is off by
    default), keeps its prints, and passes `make test`'s strict nbval check (bars off there too) when run again."""
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    _write_notebook(notebooks / "01_bars.ipynb", [nbformat.v4.new_code_cell(
        "from tqdm import tqdm\n"
        "for epoch in range(2):\n"
        "    for _ in tqdm(range(3), desc=f'epoch {epoch} train', leave=False, disable=not progress):\n"
        "        pass\n"
        "    print('epoch', epoch, 'done')\n"
        "for _ in tqdm(range(4), desc='evaluate', disable=not progress):\n"
        "    pass")])
    monkeypatch.setattr(paths, "NOTEBOOKS_DIR", notebooks)
    assert execute.run(RunOptions("demo", in_place=True, timeout=120, output_root=output_root)).code == 0
    stored = nbformat.read(notebooks / "01_bars.ipynb", as_version=4)
    assert stored.metadata["kernelspec"] == clean.KERNELSPEC
    assert [o.get("name") for o in stored.cells[2].outputs] == ["stdout"], stored.cells[2].outputs
    assert stored.cells[2].outputs[0].text == "epoch 0 done\nepoch 1 done\n"
    check = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval", "--nbval-kernel-name", "python3",
         "--nbval-sanitize-with", str(paths.PROJECT_ROOT / "notebooks" / "sanitize.cfg"), str(notebooks)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert check.returncode == 0, check.stdout[-3000:]


def test_relative_profile_file_reaches_the_notebooks_as_an_absolute_path(output_root: Path, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch):
    """A profile file of one's own, given relative to the caller, is found by the notebooks too."""
    (tmp_path / "mine.yaml").write_text(paths.profile_file("demo").read_text())
    monkeypatch.chdir(tmp_path)
    seen = []
    monkeypatch.setattr("papermill.execute_notebook", _recording(seen))
    assert execute.run(RunOptions("mine.yaml", only=["01"], output_root=output_root)).code == 0
    assert seen == [{"profile": str(tmp_path / "mine.yaml"), "data_root": None, "device": None,
                     "output_root": str(output_root), "progress": False}]
