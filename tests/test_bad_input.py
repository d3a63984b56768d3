"""Bad input (issue 34): each case is one line ``error: ...`` that says what to do and exit code 2,
with nothing written before lost; or, for a cache, a line that says it is computed again. A CUDA
device without a GPU, an unknown device, a corrupt training state to resume, a corrupt head
cache, teacher weights of another architecture or unreadable, an output folder that cannot be
written, list and mapping entries of the wrong type, unreadable images at split time (and from
DataLoader workers), and an empty data folder under the runner."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from torch import nn

from conftest import write_jpeg
from dario_utils.core import paths
from dario_utils.core.config import ConfigError, load_config
from dario_utils.core.paths import RunLayout
from dario_utils.data import dataset
from dario_utils.evaluation import evaluate
from dario_utils.models import build_student, load_teacher, RRDBNet, save_sr_checkpoint, TeacherWeightsError
from dario_utils.runner import reproduce
from dario_utils.training import train
from dario_utils.training.head_cache import head_features

PROFILE = "bad-input"
TINY = {"nf": 8, "nb": 1, "gc": 4}
NO_GPU = ("error: profile '{profile}' asks for device cuda but no GPU is visible: pass --device cpu (slow) "
          "or run on a machine with a GPU\n")


def _without_bars(err: str) -> str:
    """stderr without tqdm's progress bars (what a terminal overwrites)."""
    return err.rsplit("\r", 1)[-1]


def _one_error_line(err: str) -> str:
    """The whole of stderr: exactly one line, ``error: ...``, no traceback."""
    assert err.startswith("error: ") and err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err.rstrip("\n")


@pytest.fixture
def images(tmp_path: Path) -> Path:
    """A sample folder of twelve small JPEGs (split 7 / 1 / 4 by the imagenet-sample fractions)."""
    for k in range(12):
        write_jpeg(tmp_path / "images" / f"n01440764_{k}.JPEG", k)
    return tmp_path / "images"


@pytest.fixture
def tiny(tmp_path: Path, output_root: Path, images: Path) -> Path:
    """A profile file (imagenet-sample at 32 px, a 1-block RRDBNet start, random-weight teacher)
    whose manifests are written."""
    raw = yaml.safe_load(paths.profile_file("imagenet-sample").read_text())
    raw.update(profile=PROFILE, num_threads=1, data_root=str(images))
    raw["data"].update(image_size=32, num_workers=0)
    raw["teacher"]["weights"] = "random"
    start = save_sr_checkpoint(tmp_path / "start.pt", RRDBNet(**TINY, scale=4), {"profile": "test"})
    raw["sr"].update(**TINY, pretrained=str(start))
    raw["train"].update(epochs=1, batch_size=2, max_batches=1, frozen_blocks=None, flipped_copies=False)
    raw["eval"].update(batch_size=2, bootstrap=10)
    path = tmp_path / f"{PROFILE}.yaml"
    path.write_text(yaml.safe_dump(raw))
    config = load_config(path, output_root=output_root)
    dataset.write_manifests(config, dataset.make_split(config))
    return path


@pytest.fixture
def layout(output_root: Path) -> RunLayout:
    """The tiny profile's run under the test's output root."""
    return RunLayout(PROFILE, output_root)


def _profile_with(tiny: Path, **changes) -> Path:
    raw = yaml.safe_load(tiny.read_text())
    for dotted, value in changes.items():
        section, _, key = dotted.rpartition("__")
        (raw[section] if section else raw)[key] = value
    tiny.write_text(yaml.safe_dump(raw))
    return tiny


# ---------------------------------------------------------------- devices


@pytest.fixture
def no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_train_on_cuda_without_a_gpu(no_gpu, output_root: Path, capsys: pytest.CaptureFixture):
    assert train.main(["--profile", "demo", "--device", "cuda"]) == 2
    assert capsys.readouterr().err == NO_GPU.format(profile="demo")
    assert not output_root.exists()


def test_evaluate_on_cuda_without_a_gpu(no_gpu, tiny: Path, capsys: pytest.CaptureFixture,
                                        layout: RunLayout):
    assert evaluate.main(["--profile", str(tiny), "--device", "cuda", "--models", "original"]) == 2
    assert capsys.readouterr().err == NO_GPU.format(profile=PROFILE)
    assert not layout.results.exists()


def test_train_command_on_cuda_without_a_gpu(tmp_path: Path):
    """The command itself, as a user runs it: no traceback."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "DARIO_OUTPUT_ROOT": str(tmp_path / "out")}
    done = subprocess.run([sys.executable, "-m", "dario_utils.training.train", "--profile", "demo", "--device", "cuda"],
                          cwd=paths.PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr == NO_GPU.format(profile="demo")


def test_unknown_device_in_a_profile(tiny: Path, capsys: pytest.CaptureFixture):
    _profile_with(tiny, device="gpu")
    with pytest.raises(ConfigError) as err:
        load_config(tiny)
    assert str(err.value) == "config key 'device': unknown device 'gpu'; choose from cpu, cuda, cuda:N"
    assert train.main(["--profile", str(tiny)]) == 2
    assert _one_error_line(capsys.readouterr().err) == f"error: {err.value}"
    assert load_config(_profile_with(tiny, device="cuda:1")).device == "cuda:1"


# ---------------------------------------------------------------- config entries of the wrong type


@pytest.mark.parametrize("overrides, message", [
    ({"data.fractions": {"train": "0.6", "val": 0.2, "test": 0.2}},
     "config key 'data.fractions.train': expected float, got '0.6'"),
    ({"data.fractions": {"train": 0.6, "val": None, "test": 0.2}},
     "config key 'data.fractions.val': expected float, got None"),
    ({"beyond.scales": [0.25, "0.5"]}, "config key 'beyond.scales[1]': expected float, got '0.5'"),
    ({"beyond.ablation_temperatures": ["2"]},
     "config key 'beyond.ablation_temperatures[0]': expected float, got '2'"),
    ({"crossval.judges": ["efficientnet_lite2", 1]}, "config key 'crossval.judges[1]': expected str, got 1"),
])
def test_entries_of_the_wrong_type_name_the_key(overrides: dict, message: str):
    with pytest.raises(ConfigError) as err:
        load_config("demo", overrides)
    assert str(err.value) == message


def test_entries_of_the_wrong_type_in_a_profile_file(tiny: Path, capsys: pytest.CaptureFixture):
    _profile_with(tiny, beyond__scales=["0.25", "0.5"])
    assert train.main(["--profile", str(tiny)]) == 2
    assert _one_error_line(capsys.readouterr().err) == (
        "error: config key 'beyond.scales[0]': expected float, got '0.25'")
    assert load_config("demo", {"beyond.scales": [1, 0.5]}).beyond.scales == [1.0, 0.5]  # ints are floats


# ---------------------------------------------------------------- resuming from a corrupt training state


def _truncated_state(last: Path) -> None:
    torch.save({"provenance": {"teacher": "x"}, "weights": torch.zeros(1000)}, last)
    last.write_bytes(last.read_bytes()[:300])


def _no_state(last: Path) -> None:
    torch.save({"weights": torch.zeros(3)}, last)


@pytest.mark.parametrize("make, reason", [
    (_truncated_state, "is not a readable checkpoint: truncated or corrupt file ("),
    (lambda last: last.write_bytes(b""), "is not a readable checkpoint: empty file"),
    (_no_state, "holds no training state to resume (provenance, optimizer, rng, history)"),
])
def test_resume_from_a_corrupt_last_checkpoint(tiny: Path, capsys: pytest.CaptureFixture, make, reason: str,
                                               layout: RunLayout):
    last = layout.checkpoints / "darionet_last.pt"
    last.parent.mkdir(parents=True)
    make(last)
    before = last.read_bytes()
    assert train.main(["--profile", str(tiny), "--resume"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert line.startswith(f"error: {last} {reason}")
    assert line.endswith("; delete it to start over, or drop --resume (resume=False)")
    assert last.read_bytes() == before  # nothing lost


# ---------------------------------------------------------------- the head cache


def test_a_corrupt_head_cache_is_computed_again(tiny: Path, capsys: pytest.CaptureFixture, layout: RunLayout):
    config = load_config(tiny, {"train.frozen_blocks": 1}, output_root=layout.output_root)
    net = build_student(config, "cpu")
    first = head_features(config, "val", net, torch.device("cpu"), progress=False)
    cache = layout.head_cache(f"head-val-{config.data.scale:g}.pt")
    assert cache.is_file()
    cache.write_bytes(cache.read_bytes()[:100])
    capsys.readouterr()
    again = head_features(config, "val", net, torch.device("cpu"), progress=False)
    err = capsys.readouterr().err
    assert err == f"head cache unreadable, computing it again: {cache} is not a readable checkpoint: " \
                  f"{err.split('readable checkpoint: ')[1]}" and err.count("\n") == 1, err
    assert "truncated or corrupt file" in err
    assert torch.equal(again.feat, first.feat) and torch.equal(again.trunk, first.trunk)
    assert torch.load(cache, weights_only=True)["key"]  # written anew, readable
    cache.write_text("not a cache")
    head_features(config, "val", net, torch.device("cpu"), progress=False)
    assert "head cache unreadable, computing it again: " in capsys.readouterr().err


# ---------------------------------------------------------------- teacher weights


def _other_architecture(path: Path) -> None:
    torch.save(nn.Linear(4, 2).state_dict(), path)


def _truncated_weights(path: Path) -> None:
    torch.save(nn.Linear(64, 64).state_dict(), path)
    path.write_bytes(path.read_bytes()[:500])


TEACHER_FILES = {
    "other-architecture": (_other_architecture, "holds the weights of another architecture ("),
    "truncated": (_truncated_weights, "is not a readable checkpoint: truncated or corrupt file ("),
    "text": (lambda path: path.write_text("weights\n"), "is not a readable checkpoint: not a PyTorch file"),
}


@pytest.fixture(params=list(TEACHER_FILES))
def bad_teacher(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, str]:
    make, reason = TEACHER_FILES[request.param]
    path = tmp_path / "teacher.pt"
    make(path)
    return path, reason


def _assert_teacher_line(message: str, path: Path, reason: str) -> None:
    assert "\n" not in message
    assert message.startswith(f"teacher efficientnet_lite0: {path} {reason}"), message
    assert message.endswith("give teacher efficientnet_lite0's weights file as teacher.weights, "
                            "or the teacher it holds as teacher.name")


def test_teacher_weights_of_another_architecture_or_unreadable(bad_teacher: tuple[Path, str]):
    path, reason = bad_teacher
    with pytest.raises(TeacherWeightsError) as err:
        load_teacher("efficientnet_lite0", weights=path)
    assert isinstance(err.value, ValueError)
    _assert_teacher_line(str(err.value), path, reason)


def test_train_and_evaluate_with_bad_teacher_weights(bad_teacher: tuple[Path, str], tiny: Path,
                                                     capsys: pytest.CaptureFixture, layout: RunLayout):
    path, reason = bad_teacher
    _profile_with(tiny, teacher__weights=str(path))
    assert train.main(["--profile", str(tiny)]) == 2
    _assert_teacher_line(_one_error_line(capsys.readouterr().err).removeprefix("error: "), path, reason)
    assert not (layout.checkpoints / "darionet_last.pt").exists()
    assert evaluate.main(["--profile", str(tiny), "--models", "original"]) == 2
    _assert_teacher_line(_one_error_line(capsys.readouterr().err).removeprefix("error: "), path, reason)


# ---------------------------------------------------------------- outputs that cannot be written


def _loaded(monkeypatch: pytest.MonkeyPatch, module, name: str) -> list:
    """Record calls of ``module.name``: the work that must not start."""
    calls: list = []
    original = getattr(module, name)
    monkeypatch.setattr(module, name, lambda *args, **kwargs: calls.append(args) or original(*args, **kwargs))
    return calls


def test_train_with_an_unwritable_output_folder(tiny: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture, layout: RunLayout):
    blocker = layout.checkpoints
    blocker.write_text("a file, not a folder")
    teachers = _loaded(monkeypatch, train, "teacher_of")
    assert train.main(["--profile", str(tiny)]) == 2
    assert _one_error_line(capsys.readouterr().err) == (
        f"error: cannot write to output folder {blocker}: Not a directory. "
        "Fix its permissions or set DARIO_OUTPUT_ROOT to a writable folder.")
    assert teachers == [] and blocker.read_text() == "a file, not a folder"
    assert not layout.results.exists()


def test_evaluate_with_an_unwritable_output_folder(tiny: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture, layout: RunLayout):
    blocker = layout.results
    blocker.write_text("a file, not a folder")
    judges = _loaded(monkeypatch, evaluate, "load_judge")
    assert evaluate.main(["--profile", str(tiny), "--models", "original"]) == 2
    assert _one_error_line(capsys.readouterr().err) == (
        f"error: cannot write to output folder {blocker}: Not a directory. "
        "Fix its permissions or set DARIO_OUTPUT_ROOT to a writable folder.")
    assert judges == [] and blocker.read_text() == "a file, not a folder"
    with pytest.raises(Exception, match="cannot write to output folder"):  # the notebooks' entry point too
        evaluate.evaluate(load_config(tiny, output_root=layout.output_root), ["original"], progress=False)
    assert judges == []


# ---------------------------------------------------------------- unreadable images at split time


def _truncated_jpeg(path: Path) -> None:
    whole = write_jpeg(path, 99).read_bytes()
    path.write_bytes(whole[: len(whole) // 2])


def _corrupt_jpeg(path: Path) -> None:
    """A JPEG whose frame header (SOF0) says 0x0 px."""
    whole = write_jpeg(path, 99).read_bytes()
    frame = whole.index(b"\xff\xc0")
    path.write_bytes(whole[:frame + 5] + bytes(4) + whole[frame + 9:])


BAD_IMAGES = {
    "truncated": (_truncated_jpeg, "is truncated or corrupt (image file is truncated"),
    "corrupt": (_corrupt_jpeg, "is no image file PIL can read"),
    "empty": (lambda path: path.write_bytes(b""), "is an empty file (0 bytes)"),
    "text": (lambda path: path.write_text("these are not pixels\n"), "is no image file PIL can read"),
    "tiny": (lambda path: write_jpeg(path, 1, size=(4, 4)), "is 4x4 px, smaller than 8 px"),
}


@pytest.mark.parametrize("kind", list(BAD_IMAGES))
def test_unreadable_image_is_refused_at_split_time(images: Path, output_root: Path, kind: str):
    make, reason = BAD_IMAGES[kind]
    bad = images / "n01443537_bad.JPEG"
    make(bad)
    config = load_config("imagenet-sample", {"data_root": str(images)}, output_root=output_root)
    with pytest.raises(dataset.DataError) as err:
        dataset.make_split(config)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"image {bad} {reason}"), message
    assert message.endswith(": remove or replace it, or set data.skip_unreadable: true in the profile "
                            "to leave it out of the split")
    assert not output_root.exists()


def test_skip_unreadable_leaves_it_out_and_counts_it(images: Path, output_root: Path,
                                                     capsys: pytest.CaptureFixture):
    bad = images / "n01443537_bad.JPEG"
    _truncated_jpeg(bad)
    config = load_config("imagenet-sample", {"data_root": str(images), "data.skip_unreadable": True},
                         output_root=output_root)
    frames = dataset.make_split(config)
    assert bad.name not in set(pd.concat(frames.values())["path"])
    assert sum(len(f) for f in frames.values()) == 12
    err = _without_bars(capsys.readouterr().err)
    assert err.startswith(f"left 1 unreadable image(s) out of the split (data.skip_unreadable is on): image {bad} "
                          "is truncated or corrupt (") and err.count("\n") == 1, err
    summary = dataset.split_summary(frames)  # what notebook 01 shows
    assert summary["skipped unreadable"].sum() == 1
    meta = json.loads((dataset.write_manifests(config, frames) / "meta.json").read_text())
    assert [reason for reasons in meta["skipped"].values() for reason in reasons] == [
        r for rs in frames.skipped.values() for r in rs]
    assert str(bad) in json.dumps(meta["skipped"])
    # without anything skipped, the summary has no such column
    bad.unlink()
    assert "skipped unreadable" not in dataset.split_summary(dataset.make_split(config)).columns


def test_skip_unreadable_says_so_on_stderr(images: Path, capsys: pytest.CaptureFixture):
    bad = images / "n01443537_bad.JPEG"
    bad.write_bytes(b"")
    dataset.make_split(load_config("imagenet-sample", {"data_root": str(images), "data.skip_unreadable": True}))
    assert _without_bars(capsys.readouterr().err) == (
        f"left 1 unreadable image(s) out of the split (data.skip_unreadable is on): image {bad} is an empty file "
        "(0 bytes)\n")


def test_image_error_from_a_dataloader_worker_is_one_line(tmp_path: Path):
    bad = tmp_path / "n01440764_bad.JPEG"
    _truncated_jpeg(bad)
    frame = pd.DataFrame([{"path": bad.name, "wnid": "n01440764", "label": 0, "width": 48, "height": 40,
                           "label_source": "filename", "group": "n01440764"}], columns=dataset.MANIFEST_COLUMNS)
    loader = torch.utils.data.DataLoader(dataset.ManifestDataset(frame, tmp_path, 32), batch_size=1, num_workers=1,
                                         collate_fn=dataset.collate)
    with pytest.raises(dataset.ImageReadError) as err:
        next(iter(loader))
    message = str(err.value)
    assert "\n" not in message and "Original Traceback" not in message, message
    assert message.startswith(f"cannot read image {bad}: image file is truncated")


# ---------------------------------------------------------------- the runner


def test_empty_data_folder_under_the_runner_exits_2(tmp_path: Path, output_root: Path,
                                                    capsys: pytest.CaptureFixture):
    """Notebook 01 raises the DataError in its kernel: the runner prints its message alone and exits 2."""
    empty = tmp_path / "empty"
    empty.mkdir()
    published = output_root / "figures" / "imagenet-sample"
    published.mkdir(parents=True)
    (published / "table1.md").write_text("previous complete results")
    code = reproduce.main(["--profile", "imagenet-sample", "--data-root", str(empty), "--only", "01"])
    assert code == 2
    assert _one_error_line(capsys.readouterr().err) == (
        f"error: no images in {empty}: expected files named <wnid>_<name>.JPEG")
    assert sorted(p.name for p in published.iterdir()) == ["table1.md"]
    assert (published / "table1.md").read_text() == "previous complete results"
