"""Tests of dario_utils.training.train on CPU with a tiny profile: 40 px crops of real photos (32 px
training crops), an RRDBNet with nf 8, nb 1, gc 4, the efficientnet_lite0 teacher, two
epochs of two batches."""
from __future__ import annotations

import collections.abc
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import typing
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skimage.data
import torch
import torch.nn.functional as F
import yaml
from PIL import Image

from dario_utils.core import paths
from dario_utils.core.config import Config, load_config, with_overrides
from dario_utils.data.dataset import DataError, FlippedCopies, manifest_dataset, ManifestDataset
from dario_utils.data.degrade import downsample, reconstruct
from dario_utils.training import head_cache, loop, train
from dario_utils.models import (CheckpointError, RRDBNet, build_student, load_sr, load_teacher, read_sr_checkpoint,
                                save_sr_checkpoint)

PROFILE = "tiny"
PHOTOS = ("astronaut", "chelsea", "coffee")
CROPS_PER_PHOTO = 8
SPLIT_SIZES = {"train": 16, "val": 4, "test": 4}
START_STEPS = 40  # L1 steps that give the start checkpoint


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def image_rows(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    """24 PNG crops (48 px) of three real photos and their manifest rows (in split order)."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    rows = []
    for label, name in enumerate(PHOTOS):
        photo = getattr(skimage.data, name)()
        for k in range(CROPS_PER_PHOTO):
            side = int(rng.integers(96, min(photo.shape[:2])))
            top = int(rng.integers(0, photo.shape[0] - side))
            left = int(rng.integers(0, photo.shape[1] - side))
            crop = Image.fromarray(photo[top:top + side, left:left + side]).resize((48, 48))
            file = f"{name}_{k}.png"
            crop.save(root / file)
            rows.append({"path": file, "wnid": f"n{label:08d}", "label": label, "width": 48, "height": 48,
                         "label_source": "test", "group": name})
    frame = pd.DataFrame(rows).sample(frac=1.0, random_state=0).reset_index(drop=True)
    return root, frame


def write_manifests(output_root: Path, image_rows: tuple[Path, pd.DataFrame],
                    sizes: dict[str, int] = SPLIT_SIZES) -> None:
    """Manifests of the tiny profile under ``output_root`` (as data.read_manifest reads them)."""
    image_root, frame = image_rows
    folder = output_root / "runs" / PROFILE / "manifests"
    folder.mkdir(parents=True, exist_ok=True)
    start = 0
    for split, size in sizes.items():
        frame.iloc[start:start + size].to_csv(folder / f"{split}.csv", index=False)
        start += size
    (folder / "meta.json").write_text(json.dumps({"data_root": str(image_root)}))


@pytest.fixture(scope="module")
def start_checkpoint(tmp_path_factory: pytest.TempPathFactory, image_rows) -> Path:
    """Where fine-tuning starts: a tiny RRDBNet briefly fitted with pixel L1 to the train split
    (a freshly initialised one outputs a nearly flat image, through which the teacher
    passes almost no gradient at 32 px)."""
    root = tmp_path_factory.mktemp("start")
    write_manifests(root, image_rows)
    config = tiny_config(root / "start.pt", root)  # the file made here
    dataset = manifest_dataset(config, "train")
    images = torch.stack([dataset[i]["image"] for i in range(len(dataset))])
    small = downsample(images, config.data.scale)
    torch.manual_seed(0)
    net = RRDBNet(nf=8, nb=1, gc=4)
    with torch.no_grad():
        net.conv_last.bias.fill_(0.5)  # mid-grey: no colour channel starts below reconstruct's clamp
    optimizer = torch.optim.Adam(net.parameters(), lr=5e-3)
    for _ in range(START_STEPS):
        loss = F.l1_loss(reconstruct(net, small, images.shape[-1]), images)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return save_sr_checkpoint(root / "start.pt", net, {"stage": "test start"})


def tiny_config(start: Path | str, output_root: Path, **overrides: object) -> Config:
    """The demo profile shrunk to seconds on CPU, writing under ``output_root``."""
    values = {"profile": PROFILE, "num_threads": 1, "data.image_size": 40, "data.num_workers": 0,
              "sr.nf": 8, "sr.nb": 1, "sr.gc": 4, "sr.pretrained": str(start),
              "teacher.name": "efficientnet_lite0", "train.batch_size": 4, "train.epochs": 2,
              "train.max_batches": 2, "train.crop": 32, "train.lr": 1e-3}
    # the profile's frozen head, flipped copies and cosine schedule off unless asked for: crops and the
    # plain loop are tested here
    return with_overrides(load_config("imagenet-sample", values, output_root=output_root),
                          {"train.frozen_blocks": None, "train.flipped_copies": False, "train.lr_schedule": "constant",
                           **overrides})


@pytest.fixture
def output_root(tmp_path: Path, image_rows) -> Path:
    """A fresh output root with the tiny profile's manifests."""
    write_manifests(tmp_path, image_rows)
    return tmp_path


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, image_rows, start_checkpoint) -> tuple[Path, pd.DataFrame]:
    """An uninterrupted single-process run: its output root and history."""
    root = tmp_path_factory.mktemp("reference")
    write_manifests(root, image_rows)
    history = train.finetune(tiny_config(start_checkpoint, root), progress=False)
    return root, history


def run_file(root: Path, folder: str, name: str) -> Path:
    return root / "runs" / PROFILE / folder / name


def fail_at_call(monkeypatch: pytest.MonkeyPatch, call: int, action) -> None:
    """Make the ``call``-th fine-tuning batch (1-based, over all epochs) run ``action(loss, stats)``."""
    original, calls = train._forward_batch, []

    def wrapped(*args, **kwargs):
        calls.append(1)
        loss, stats = original(*args, **kwargs)
        return action(loss, stats) if len(calls) == call else (loss, stats)

    monkeypatch.setattr(train, "_forward_batch", wrapped)


# ---------------------------------------------------------------- tests


def test_finetune_writes_history_and_checkpoints(reference, start_checkpoint) -> None:
    root, history = reference
    assert list(history.columns) == train.HISTORY_COLUMNS
    assert history[["epoch", "phase"]].values.tolist() == [[0, "start"], [1, "train"], [1, "val"], [2, "train"],
                                                           [2, "val"]]
    assert np.isfinite(history[list(train.STATS)].to_numpy()).all()
    assert history["agreement"].between(0, 1).all() and (history["images_per_s"] > 0).all()
    on_disk = pd.read_csv(run_file(root, "results", "history.csv"))
    pd.testing.assert_frame_equal(on_disk, history, check_dtype=False)

    best = read_sr_checkpoint(run_file(root, "checkpoints", "darionet_best.pt"))
    val = history[history["phase"] == "val"]
    assert best.provenance["epoch"] == int(val.loc[val["val_loss"].idxmin(), "epoch"])
    assert best.provenance["teacher"] == "efficientnet_lite0"
    last = load_sr(run_file(root, "checkpoints", "darionet_last.pt"), expect_config={"nf": 8, "nb": 1, "gc": 4})
    start = load_sr(start_checkpoint)
    assert any(not torch.equal(a, b) for a, b in zip(last.state_dict().values(), start.state_dict().values()))


def test_killed_run_resumes_to_bit_identical_weights(output_root, reference, start_checkpoint,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    def sigterm(loss, stats):
        os.kill(os.getpid(), signal.SIGTERM)  # the handler turns it into KeyboardInterrupt
        return loss, stats

    handler_before = signal.getsignal(signal.SIGTERM)
    fail_at_call(monkeypatch, 4, sigterm)  # epoch 2, batch 2
    with pytest.raises(KeyboardInterrupt):
        train.finetune(tiny_config(start_checkpoint, output_root), progress=False)
    assert signal.getsignal(signal.SIGTERM) is handler_before
    last = run_file(output_root, "checkpoints", "darionet_last.pt")
    assert read_sr_checkpoint(last).provenance["epoch"] == 1
    assert len(pd.read_csv(run_file(output_root, "results", "history.csv"))) == 3  # start, epoch 1

    history = train.finetune(tiny_config(start_checkpoint, output_root), resume=True, progress=False)
    ref_root, ref_history = reference
    stats = list(train.STATS)
    pd.testing.assert_frame_equal(history[stats], ref_history[stats], check_exact=True)
    resumed = torch.load(last, weights_only=True)
    uninterrupted = torch.load(run_file(ref_root, "checkpoints", "darionet_last.pt"), weights_only=True)
    for key, value in uninterrupted["state_dict"].items():
        assert torch.equal(resumed["state_dict"][key], value), key
    for key, value in uninterrupted["optimizer"]["state"].items():
        assert all(torch.equal(resumed["optimizer"]["state"][key][k], v) for k, v in value.items())


def test_two_process_ddp_matches_one_process(tmp_path: Path, image_rows, start_checkpoint, reference) -> None:
    write_manifests(tmp_path, image_rows)
    profile = tmp_path / f"{PROFILE}.yaml"
    profile.write_text(yaml.safe_dump(tiny_config(start_checkpoint, tmp_path).to_dict()))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "DARIO_OUTPUT_ROOT": str(tmp_path), "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
               f"--master_port={port}", "-m", "dario_utils.training.train", "--profile", str(profile), "--device", "cpu"]
    done = subprocess.run(command, env=env, cwd=paths.PROJECT_ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]

    ddp = pd.read_csv(run_file(tmp_path, "results", "history.csv"))
    _, single = reference
    stats = list(train.STATS)
    np.testing.assert_allclose(ddp[stats].to_numpy(), single[stats].to_numpy(), rtol=1e-4)


def test_start_checkpoint_of_another_shape_is_a_clear_error(output_root, tmp_path: Path) -> None:
    other = save_sr_checkpoint(tmp_path / "other.pt", RRDBNet(nf=16, nb=1, gc=4), {"stage": "test"})
    with pytest.raises(CheckpointError, match=r"nf=16 \(requested 8\).*sr\.nf"):
        build_student(tiny_config(other, output_root), "cpu")


def test_missing_start_weights_say_where_they_come_from(output_root, monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:
    monkeypatch.setenv("DARIO_WEIGHTS_CACHE", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "cache" / "mine.pt")):
        build_student(tiny_config("mine.pt", output_root), "cpu")


@pytest.mark.parametrize("stage", ["finetune", "evaluate"])
def test_config_is_checked_before_any_data_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   stage: str) -> None:
    from dario_utils.core.config import ConfigError
    from dario_utils.evaluation import evaluate

    config = tiny_config(tmp_path / "missing.pt", tmp_path, **{"train.loss": "hinge"})  # no manifests, no weights
    run = {"finetune": train.finetune, "evaluate": evaluate.evaluate}[stage]
    with pytest.raises(ConfigError, match="unknown loss 'hinge'"):
        run(config, progress=False)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(output_root, start_checkpoint,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    fail_at_call(monkeypatch, 3, lambda loss, stats: (loss * float("nan"), stats))  # epoch 2, batch 1
    with pytest.raises(train.TrainingError, match=r"epoch 2, batch 1.*last good checkpoint is kept.*epoch 1"):
        train.finetune(tiny_config(start_checkpoint, output_root), progress=False)
    last = run_file(output_root, "checkpoints", "darionet_last.pt")
    assert read_sr_checkpoint(last).provenance["epoch"] == 1
    assert all(torch.isfinite(p).all() for p in load_sr(last).parameters())


def test_an_empty_split_is_a_clear_error(output_root, image_rows, start_checkpoint) -> None:
    write_manifests(output_root, image_rows, {"train": 16, "val": 0, "test": 8})
    with pytest.raises(DataError, match="val split .* has no images"):
        train.finetune(tiny_config(start_checkpoint, output_root), progress=False)


def test_augmentation_depends_on_the_sample_not_the_batch() -> None:
    augment = train._Augment(seed=3, hflip=0.5, vflip=0.5, crop=8)
    images, indices = torch.rand(6, 3, 12, 12), torch.tensor([5, 0, 9, 2, 7, 4])
    together = augment(images, indices, epoch=1)
    alone = torch.cat([augment(images[i:i + 1], indices[i:i + 1], epoch=1) for i in range(6)])
    assert together.shape == (6, 3, 8, 8) and torch.equal(together, alone)
    assert not torch.equal(together, augment(images, indices, epoch=2))


def test_global_batch_must_split_evenly_over_processes(output_root, start_checkpoint) -> None:
    config = tiny_config(start_checkpoint, output_root)
    dataset = ManifestDataset(pd.DataFrame({"path": ["x"], "label": [0]}), output_root, 40)
    with pytest.raises(ValueError, match="not divisible by the 2 processes"):
        loop.train_loader(dataset, 5, 0, config, rank=0, world=2)



# ---------------------------------------------------------------- frozen head (train.frozen_blocks)


def frozen_config(start: Path, output_root: Path, **overrides: object) -> Config:
    """The tiny profile with a 2-block net whose head (conv_first and block 0) stays frozen."""
    config = tiny_config(start, output_root, **{"sr.nb": 2, "train.frozen_blocks": 1, "train.hflip": 0.0,
                                                "train.vflip": 0.0, **overrides})
    if "train.crop" not in overrides:
        config.train.crop = None  # load_config ignores None overrides
    return config


@pytest.fixture(scope="module")
def two_block_start(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    net = RRDBNet(nf=8, nb=2, gc=4)
    return save_sr_checkpoint(tmp_path_factory.mktemp("start") / "start.pt", net, {"stage": "test"})


@pytest.mark.parametrize("blocks", [0, 1, 2])
def test_head_then_tail_is_the_whole_net(blocks: int) -> None:
    torch.manual_seed(0)
    net = RRDBNet(nf=8, nb=2, gc=4).eval()
    x = torch.rand(2, 3, 10, 12)
    with torch.no_grad():
        assert torch.equal(net.tail(*net.head(x, blocks), blocks), net(x))


def test_frozen_head_trains_only_the_tail_on_cached_features(output_root, two_block_start,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from dario_utils.core.metrics import psnr
    from dario_utils.evaluation import evaluate

    config = frozen_config(two_block_start, output_root)
    calls = []
    original_head = RRDBNet.head
    monkeypatch.setattr(RRDBNet, "head", lambda self, *a, **k: calls.append(1) or original_head(self, *a, **k))
    history = train.finetune(config, progress=False)
    assert len(history) == 1 + 2 * config.train.epochs and np.isfinite(history["logit_mse"]).all()
    start, tuned = load_sr(two_block_start), load_sr(run_file(output_root, "checkpoints", train.LAST_FILE))
    head_names = [n for n in start.state_dict() if n.startswith(("conv_first.", "body.0."))]
    assert head_names and all(torch.equal(start.state_dict()[n], tuned.state_dict()[n]) for n in head_names)
    assert any(not torch.equal(start.state_dict()[n], tuned.state_dict()[n])
               for n in start.state_dict() if n.startswith(("body.1.", "conv_up1.")))
    head_calls = len(calls)  # the head ran once per batch of train and val, not once per epoch
    assert head_calls == sum(-(-len(manifest_dataset(config, s)) // config.eval.batch_size) for s in ("train", "val"))
    cached = {p.name for p in (output_root / "runs" / PROFILE / "cache").iterdir()}
    assert cached == {f"head-{s}-{config.data.scale:g}.pt" for s in ("train", "val")}

    # evaluation runs the tails on cached features and matches the whole nets' forward pass
    run = evaluate.evaluate(config, ["esrgan", "darionet"], checkpoint=str(run_file(output_root, "checkpoints",
                                                                                     train.LAST_FILE)),
                            progress=False, merge=False)
    assert len(calls) == head_calls + 1  # one pass over the test split, shared by both nets (same head)
    dataset = manifest_dataset(config, "test")
    x = torch.stack([dataset[i]["image"] for i in range(len(dataset))])
    with torch.no_grad():
        recon = reconstruct(tuned, downsample(x, config.data.scale), x.shape[-1])
    expected = psnr(recon, x).numpy()
    got = run.per_image[run.per_image["model"] == "darionet"]["psnr"].to_numpy()
    assert np.allclose(got, expected, atol=1e-3)
    head_calls = len(calls)
    evaluate.evaluate(config, ["esrgan"], progress=False, merge=False)
    assert len(calls) == head_calls  # a second evaluation reads the cache back


def test_flipped_copies_train_each_image_and_its_mirror_on_the_mirror_s_head(output_root, two_block_start,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``train.flipped_copies`` an epoch steps through every train image and its mirror, and the
    tail of a mirror runs on the head of the mirror: the reconstruction each step trains on is the
    whole net's on the (mirrored) image it sees."""
    config = frozen_config(two_block_start, output_root, **{"train.flipped_copies": True, "train.epochs": 1,
                                               "train.max_batches": None})
    n = len(manifest_dataset(config, "train"))
    seen: list[int] = []
    forward_batch = train._forward_batch

    def checked_forward_batch(model, x, labels, indices, **kwargs):
        seen.extend(indices.tolist())
        with torch.no_grad():
            whole = reconstruct(model.net, downsample(x, config.data.scale), x.shape[-1])
            tail = train._reconstruct(model, x, indices, config.data.scale, kwargs["head"])
        assert torch.allclose(tail, whole, atol=1e-5)
        return forward_batch(model, x, labels, indices, **kwargs)

    monkeypatch.setattr(train, "_forward_batch", checked_forward_batch)
    train.finetune(config, progress=False)
    assert sorted(seen) == list(range(2 * n))
    cached = {p.name for p in (output_root / "runs" / PROFILE / "cache").iterdir()}
    assert f"head-train-{config.data.scale:g}-flipped.pt" in cached


def test_flipped_copies_mirror_the_second_half() -> None:
    items = [{"image": torch.arange(6.0).reshape(1, 2, 3) + i, "label": i, "index": i} for i in range(3)]
    copies = FlippedCopies(items)  # type: ignore[arg-type]
    assert len(copies) == 6
    assert copies[1] is items[1]
    assert copies[4]["index"] == 4 and copies[4]["label"] == 1
    assert torch.equal(copies[4]["image"], items[1]["image"].flip(-1))


def test_head_cache_is_recomputed_when_its_inputs_change(output_root, two_block_start) -> None:
    config = frozen_config(two_block_start, output_root)
    net = load_sr(two_block_start)
    first = head_cache.head_features(config, "val", net, torch.device("cpu"), progress=False)
    with torch.no_grad():
        net.body[0].rdb1.conv1.bias.add_(1.0)
    second = head_cache.head_features(config, "val", net, torch.device("cpu"), progress=False)
    assert not torch.equal(first.trunk, second.trunk)
    again = head_cache.head_features(config, "val", net, torch.device("cpu"), progress=False)
    assert torch.equal(again.trunk, second.trunk) and again.seconds == second.seconds


@pytest.mark.parametrize("overrides, message", [
    ({"train.hflip": 0.5}, "flips and crops"),
    ({"train.crop": 32}, "flips and crops"),
    ({"train.frozen_blocks": 3}, "between 0 and sr.nb"),
])
def test_frozen_head_refuses_what_would_change_its_output(output_root, two_block_start, overrides,
                                                         message: str) -> None:
    from dario_utils.core.config import ConfigError

    with pytest.raises(ConfigError, match=message):
        train.finetune(frozen_config(two_block_start, output_root, **overrides), progress=False)


def _train_logit_mse(config: Config, net: torch.nn.Module) -> float:
    """The logit MSE of ``net``'s reconstructions of the train split to the teacher on the originals,
    computed here, apart from the training code."""
    dataset = manifest_dataset(config, "train")
    images = torch.stack([dataset[i]["image"] for i in range(len(dataset))])
    teacher = load_teacher(config.teacher.name)
    with torch.no_grad():
        recon = reconstruct(net.eval(), downsample(images, config.data.scale), images.shape[-1])
        return float(F.mse_loss(teacher(recon), teacher(images)))


def test_fine_tuning_lowers_the_logit_loss_on_its_images(output_root, start_checkpoint) -> None:
    """A few steps over a handful of images lower the teacher's logit MSE on them: fails when the
    loss's sign, its gradient or the optimizer's step is wrong anywhere in the training loop."""
    config = tiny_config(start_checkpoint, output_root, **{"train.epochs": 4, "train.max_batches": None,
                                                           "train.crop": None, "train.hflip": 0.0, "train.vflip": 0.0})
    before = _train_logit_mse(config, load_sr(start_checkpoint))
    train.finetune(config, progress=False)
    after = _train_logit_mse(config, load_sr(run_file(output_root, "checkpoints", train.LAST_FILE)))
    assert after < 0.9 * before, f"logit MSE on the training images {before:.4f} -> {after:.4f}"


def test_extra_teachers_train_and_are_named_in_the_checkpoint(output_root, start_checkpoint) -> None:
    config = tiny_config(start_checkpoint, output_root, **{"train.extra_teachers": ["efficientnet_lite1"],
                                                           "crossval.judges": ["efficientnet_lite2"],
                                                           "alternatives.unseen_judges": [], "train.epochs": 1})
    history = train.finetune(config, progress=False)
    assert np.isfinite(history[list(train.STATS)].to_numpy()).all()
    last = read_sr_checkpoint(run_file(output_root, "checkpoints", train.LAST_FILE))
    assert last.provenance["teacher"] == "efficientnet_lite0"
    assert last.provenance["extra_teachers"] == ["efficientnet_lite1"]
    with pytest.raises(train.TrainingError, match="trained with teachers"):  # resuming with one teacher
        train.finetune(tiny_config(start_checkpoint, output_root, **{"train.epochs": 2}), resume=True, progress=False)


def test_the_training_loop_takes_no_callbacks() -> None:
    """loop.Trainer is driven by its caller (train.py, the classifier route): none of its fields is a
    function it would call back."""
    def callbacks(cls: type) -> list[str]:
        return [name for name, tp in typing.get_type_hints(cls).items()
                if typing.get_origin(tp) is collections.abc.Callable]

    assert callbacks(loop.Trainer) == []

    @dataclasses.dataclass
    class CallingBack:  # the planted violation: a step the loop would call
        step: typing.Callable[[torch.Tensor], torch.Tensor]

    assert callbacks(CallingBack) == ["step"]
