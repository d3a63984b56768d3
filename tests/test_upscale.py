"""The try-it CLI ``python -m dario_utils.evaluation.upscale`` on a scikit-image photo."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest
from PIL import Image
from skimage import data

from dario_utils.evaluation.upscale import main


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("photos") / "astronaut.png"
    Image.fromarray(data.astronaut()).save(path)
    return path


@pytest.fixture(scope="module")
def weights_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private weights cache: the CLI converts Real-ESRGAN into it on first use."""
    with pytest.MonkeyPatch.context() as mp:
        folder = tmp_path_factory.mktemp("weights")
        mp.setenv("DARIO_WEIGHTS_CACHE", str(folder))
        yield folder


@pytest.mark.parametrize("sr", ["bicubic", "realesrgan-x4plus"])
def test_cli_json_and_panel(sr: str, photo: Path, weights_cache: Path, tmp_path: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    code = main([str(photo), "--sr", sr, "--teacher", "efficientnet_lite0", "--size", "128",
                 "--out", str(tmp_path), "--json"])
    assert code == 0
    (result,) = json.loads(capsys.readouterr().out)
    assert result["image"] == str(photo)
    assert 15 < result["psnr"] < 40
    for key in ("original", "reconstruction"):
        assert len(result[key]) == 5
        assert set(result[key][0]) == {"index", "name", "prob"}
        assert result[key][0]["prob"] >= result[key][4]["prob"]
    with Image.open(tmp_path / "astronaut_panel.png") as panel:
        assert panel.width > 2 * panel.height


def test_cli_bad_images_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("hello")
    for path in (tmp_path / "missing.png", not_an_image):
        assert main([str(path), "--sr", "bicubic", "--out", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: cannot read image") and err.count("\n") == 1
