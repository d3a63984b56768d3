"""One typed configuration for the whole study, read from a profile YAML.

A profile (``profiles/<name>.yaml``) holds sections matching the dataclasses below.
The same file is passed to papermill with ``-f`` (its top-level keys ``profile``,
``data_root`` and ``device`` are also the notebooks' parameters) and read here by
:func:`load_config`. Unknown keys, values of the wrong type (the entries of lists and
mappings too, such as ``data.fractions`` and ``beyond.scales``) and a ``device`` torch does not
know are errors that name the key and what was expected. Whether the values fit together (a
frozen head and flips, a crop larger than the image...) is :func:`check_config`'s, which every entry
point (:func:`dario_utils.training.train.finetune`, :func:`dario_utils.evaluation.evaluate.evaluate`, notebook
06's judge transfer) calls before it reads any data: loading does not, so that a config can
be assembled in steps and a partial one (e.g. only to build the student) stays usable.

A profile may start from another: ``extends: imagenet-sample`` (a profile name, or a YAML path
relative to the file), then its own ``profile`` name and only the keys that differ. Mappings merge
key by key, lists and scalars (``null`` too) replace; chains are allowed, a cycle or a missing
parent is an error naming the files. The merged keys are typed and checked as any profile's.

Overrides use dotted keys: ``load_config("demo", {"train.epochs": 2})``.
"""
from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from dario_utils.core import paths


class ConfigError(ValueError):
    """A profile is missing, a key is unknown or of the wrong type, or values do not fit together."""


LR_SCHEDULES = ("constant", "cosine")
"""Learning-rate schedules (``train.lr_schedule``)."""
EXTENDS = "extends"
"""The key of a profile file that names the profile it starts from (a name or a YAML path)."""
DEVICES = ("cpu", "cuda", "cuda:N")
"""Devices a profile may name (``device``): ``cuda:N`` is the N-th GPU."""
_DEVICE = re.compile(r"cpu|cuda(:\d+)?")


@dataclass
class DataConfig:
    """Where the images come from and how they are prepared."""

    kind: str = "sample_folder"  # sample_folder | ilsvrc
    image_size: int = 256  # Resize + CenterCrop size fed to the classifier
    scale: float = 0.32  # downsampling factor of the report's Scaler
    split_seed: int = 2020
    train_fraction: float = 0.15  # ilsvrc: share of each train class
    fractions: dict[str, float] = field(default_factory=lambda: {"train": 0.6, "val": 0.2, "test": 0.2})
    skip_unreadable: bool = False  # leave out (and count) unreadable images, at split and reading, instead of stopping
    num_workers: int = 0


@dataclass
class TeacherConfig:
    """The frozen classifier that teaches (and by default judges)."""

    name: str = "efficientnet_lite0"
    weights: str | None = None  # local weights file; resnet50 also takes "random"
    input_size: int | None = None  # resize images to this side before the classifier (teacher and judge)


@dataclass
class SRConfig:
    """The super-resolution network: architecture and where its weights start."""

    nf: int = 64
    nb: int = 23
    gc: int = 32
    sr_scale: int = 4
    pretrained: str = "realesrgan-x4plus"  # a load_sr name, a checkpoint file or a file in the weights cache


@dataclass
class TrainConfig:
    """Fine-tuning DarioNet with the teacher's logits (notebook 03)."""

    epochs: int = 3
    batch_size: int = 10
    lr: float = 1e-4
    lr_schedule: str = "constant"  # "constant", or "cosine": decays per step from lr to 0 over train.epochs
    hflip: float = 0.5
    vflip: float = 0.1
    crop: int | None = None  # random crop of the original for speed (the SR net is convolutional)
    flipped_copies: bool = False  # each epoch trains on every image and its left-right mirror (2x the steps)
    max_batches: int | None = None  # per epoch; None = the whole split
    loss: str = "mse"  # on the teacher's logits (training.losses.LOSSES): "mse" (the report's) or "kl"
    temperature: float = 1.0  # of the "kl" loss (softmaxes at this temperature), which is scaled by temperature**2
    l1_weight: float = 0.0  # optional pixel loss, off as in the report
    feature_weight: float = 0.0  # optional teacher feature-map loss, off as in the report
    extra_teachers: list[str] = field(default_factory=list)  # classifiers whose logit losses are averaged with
    # the teacher's (beyond the report: a DarioNet taught by several classifiers); empty: the teacher alone
    seed: int = 1337
    amp: bool = True  # bf16 autocast on CUDA
    frozen_blocks: int | None = None  # keep conv_first and the first k RRDBs frozen, their output cached
    checkpoint_every: int = 1  # write darionet_last.pt (and a pending best) every N epochs and at the end


@dataclass
class EvalConfig:
    """Evaluation of every model (notebooks 02 and 04)."""

    split: str = "test"
    batch_size: int = 16
    bootstrap: int = 1000
    judge: str | None = None  # another classifier to judge with; None = the teacher
    judge_weights: str | None = None  # weights file of eval.judge (notebook 07: its fine-tuned copy); None = its own
    examples_per_group: int = 3  # images shown in figures 6 and 7
    report_columns: bool = False  # Table 1 beside the report's own numbers (the paper profile: the report's data)


@dataclass
class BeyondConfig:
    """Notebook 06, beyond the report: another judge, other downsampling factors, other losses."""

    with_study: bool = True  # run 06 and 07 after 01-05 in the profile's default run (the demo: make beyond)
    judge: str = "efficientnet_lite2"  # a classifier DarioNet never saw (Table 2, figure 8)
    scales: list[float] = field(default_factory=lambda: [0.25, 0.32, 0.5])  # downsampling factors of figure 9
    train_per_scale: bool = False  # also fine-tune a DarioNet at each factor (one training run each)
    loss_ablation: bool = True  # train the losses of figure 10 (the demo: off, see profiles/demo.yaml)
    ablation_epochs: int | None = None  # training budget of every loss of figure 10; None = train.epochs
    ablation_temperatures: list[float] = field(default_factory=lambda: [2.0, 4.0])  # of the KL losses
    ablation_l1_weight: float = 10.0  # pixel L1 term of the "+ L1" loss
    ablation_feature_weight: float = 1.0  # teacher feature-map term of the "+ features" loss


@dataclass
class AlternativesConfig:
    """Notebook 07: the classifier fine-tuned instead of the SR net, what each route costs."""

    classifier_lr: float = 1e-5  # Adam's learning rate for the classifier's copy (a usual fine-tuning rate, not tuned)
    classifier_epochs: int | None = None  # None = train.epochs, the SR net's budget
    speed_images: int = 32  # test images each route classifies to measure its images/s
    unseen_judges: list[str] = field(default_factory=list)  # classifiers DarioNet never trained against, under
    # which the routes are compared again, each fine-tuned the same way for route (b); empty: the teacher only


@dataclass
class CrossValConfig:
    """k-fold cross-validation of the whole recipe over every image (``python -m dario_utils.evaluation.crossval``)."""

    folds: int = 3  # every image is scored once, by the DarioNet of the fold that left it out
    seed: int = 2020  # deals the images into folds and picks each fold's validation images
    judges: list[str] = field(default_factory=lambda: ["efficientnet_lite2", "efficientnet_lite1"])  # unseen judges
    compare_with: str | None = None  # a profile cross-validated over the same folds, whose DarioNet this one's is
    # compared with image by image under every judge both used (figures/<p>/crossval/versus_<other>.csv)


@dataclass
class Config:
    """A whole profile."""

    profile: str = "demo"
    data_root: str | None = None
    device: str = "cpu"
    num_threads: int | None = None  # fixed torch thread count for reproducible CPU numbers
    seed: int = 2020
    data: DataConfig = field(default_factory=DataConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    sr: SRConfig = field(default_factory=SRConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    beyond: BeyondConfig = field(default_factory=BeyondConfig)
    alternatives: AlternativesConfig = field(default_factory=AlternativesConfig)
    crossval: CrossValConfig = field(default_factory=CrossValConfig)
    output_root: Path = paths.PROJECT_ROOT  # where the run writes: given to load_config, no profile key

    @property
    def layout(self) -> paths.RunLayout:
        """Every path of this profile's run under its output root."""
        return paths.RunLayout(self.profile, self.output_root)

    @property
    def small_size(self) -> int:
        """Side of the downsampled image (256 * 0.32 -> 81)."""
        return int(self.data.image_size * self.data.scale)

    @property
    def sr_start(self) -> str:
        """Where the SR net's weights start, in words: the name or file name of ``sr.pretrained``."""
        return Path(self.sr.pretrained).name

    @property
    def judge(self) -> str:
        """Name of the classifier that evaluates."""
        return self.eval.judge or self.teacher.name

    @property
    def teachers(self) -> list[str]:
        """Every classifier DarioNet is fine-tuned against: the teacher, then ``train.extra_teachers``."""
        return [self.teacher.name, *self.train.extra_teachers]

    def to_dict(self) -> dict[str, Any]:
        """The profile's keys, resolved (not the output root: where a run writes is no part of it)."""
        tree = dataclasses.asdict(self)
        del tree["output_root"]
        return tree


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def _check_value(key: str, value: Any, tp: Any) -> Any:
    """Return ``value`` if it fits type ``tp`` (ints accepted for floats), else raise."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return _check_value(key, value, option)
            except ConfigError:
                pass
        expected = " or ".join("null" if o is type(None) else _type_name(o) for o in options)
        raise ConfigError(f"config key '{key}': expected {expected}, got {value!r}")
    base = origin or tp
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if base is int and isinstance(value, bool):
        raise ConfigError(f"config key '{key}': expected int, got {value!r}")
    if not isinstance(value, base):
        raise ConfigError(f"config key '{key}': expected {_type_name(base)}, got {value!r}")
    args = typing.get_args(tp)
    if base is list and args:  # list[float]: every entry
        return [_check_value(f"{key}[{i}]", item, args[0]) for i, item in enumerate(value)]
    if base is dict and args:  # dict[str, float]: every key and value
        return {_check_value(f"{key} (a key)", k, args[0]): _check_value(f"{key}.{k}", v, args[1])
                for k, v in value.items()}
    return value


def _build(cls: type, values: Mapping[str, Any], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        dotted = f"{prefix}{key}"
        if key not in hints:
            known = ", ".join(sorted(hints))
            raise ConfigError(f"unknown config key '{dotted}' (known here: {known})")
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, Mapping):
                raise ConfigError(f"config key '{dotted}': expected a mapping, got {value!r}")
            kwargs[key] = _build(tp, value, f"{dotted}.")
        else:
            kwargs[key] = _check_value(dotted, value, tp)
    return cls(**kwargs)


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = tree
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"config key '{dotted}': '{part}' is not a section")
    node[leaf] = value


def _check_device(config: Config) -> Config:
    """``config`` if its ``device`` is one torch and the study know (:data:`DEVICES`), else :class:`ConfigError`."""
    if not _DEVICE.fullmatch(config.device):
        raise ConfigError(f"config key 'device': unknown device {config.device!r}; choose from {', '.join(DEVICES)}")
    return config


def check_choice(key: str, value: str, choices: Sequence[str], what: str) -> str:
    """``value`` if it is one of ``choices``, else :class:`ConfigError` naming ``key``."""
    if value not in choices:
        raise ConfigError(f"config key '{key}': unknown {what} {value!r}; choose from {', '.join(choices)}")
    return value


def check_positive(key: str, value: float) -> float:
    """``value`` if it is above 0, else :class:`ConfigError` naming ``key``."""
    if value <= 0:
        raise ConfigError(f"config key '{key}': {value} must be positive")
    return value


def check_config(config: Config) -> Config:
    """``config`` after checking that its values fit together; else :class:`ConfigError`.

    Every check that needs no data, no model file and no process count: the learning-rate
    schedule by name, ``train.checkpoint_every`` of at least 1, the training crop against ``data.image_size``, a
    frozen head (``train.frozen_blocks``) that fits ``sr.nb`` and comes without flips and
    crops, and a ``beyond.judge`` that is not the teacher. The loss and its settings are the
    training floor's (:func:`dario_utils.training.losses.check_loss`, called beside this one);
    whether the batch splits evenly over the processes is checked when training starts.
    """
    train = config.train
    blocks = train.frozen_blocks
    if blocks is not None:
        if not 0 <= blocks <= config.sr.nb:
            raise ConfigError(f"config key 'train.frozen_blocks': {blocks} is not between 0 and "
                              f"sr.nb ({config.sr.nb})")
        if train.hflip or train.vflip or train.crop:
            raise ConfigError("train.frozen_blocks reuses the head's output for each image, which flips and crops "
                              "would change: set train.hflip and train.vflip to 0 and train.crop to null "
                              "(train.flipped_copies: true trains on mirrors with their head cached too)")
    if train.checkpoint_every < 1:
        raise ConfigError(f"config key 'train.checkpoint_every': {train.checkpoint_every} must be at least 1")
    if train.crop is not None and not 1 <= train.crop <= config.data.image_size:
        raise ConfigError(f"crop {train.crop} must be between 1 and data.image_size ({config.data.image_size})")
    check_choice("train.lr_schedule", train.lr_schedule, LR_SCHEDULES, "schedule")
    if config.alternatives.speed_images < 1:
        raise ConfigError(f"config key 'alternatives.speed_images': {config.alternatives.speed_images} "
                          "must be at least 1")
    if config.crossval.folds < 2:
        raise ConfigError(f"config key 'crossval.folds': {config.crossval.folds} must be at least 2")
    if config.crossval.compare_with is not None and not paths.profile_file(str(config.crossval.compare_with)).is_file():
        raise ConfigError(f"config key 'crossval.compare_with': {config.crossval.compare_with!r} is not a profile "
                          f"in {paths.PROFILES_DIR}")
    teachers = config.teachers
    if len(set(teachers)) < len(teachers) or not all(isinstance(name, str) for name in teachers):
        raise ConfigError(f"config key 'train.extra_teachers': {train.extra_teachers} must name classifiers "
                          f"other than the teacher ({config.teacher.name}), each once")
    for key, judges in (("crossval.judges", config.crossval.judges),
                        ("alternatives.unseen_judges", config.alternatives.unseen_judges)):
        for judge in judges:
            if not isinstance(judge, str) or judge in teachers:
                raise ConfigError(f"config key '{key}': {judge!r} is not the name of a classifier "
                                  f"other than the teachers ({', '.join(teachers)})")
    if config.eval.judge_weights is not None and config.eval.judge is None:
        raise ConfigError("config key 'eval.judge_weights' gives the weights of eval.judge, which is not set: "
                          "name the judge, or give the teacher's weights as teacher.weights")
    if config.beyond.judge in teachers:
        role = "the teacher" if config.beyond.judge == config.teacher.name else "an extra teacher"
        raise ConfigError(f"config key 'beyond.judge': {config.beyond.judge} is {role}; "
                          "name a classifier DarioNet never saw")
    return config


def available_profiles() -> list[str]:
    return sorted(p.stem for p in paths.PROFILES_DIR.glob("*.yaml"))


def _profile_path(profile: str | Path, folder: Path | None = None) -> Path:
    """The file of ``profile``: a YAML path (relative to ``folder`` where given), else ``profiles/<name>.yaml``."""
    if not str(profile).endswith((".yaml", ".yml")):
        return paths.profile_file(str(profile))
    return folder / profile if folder is not None else Path(profile)


def _merged(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``update``'s keys: mappings in both merge key by key, anything else replaces."""
    tree = dict(base)
    for key, value in update.items():
        both = isinstance(value, Mapping) and isinstance(tree.get(key), Mapping)
        tree[key] = _merged(tree[key], value) if both else value
    return tree


def _read_profile(path: Path, chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The keys of the profile file ``path``, merged over those of the profile it ``extends`` (and so on up)."""
    if path.resolve() in chain:
        cycle = " -> ".join(str(p) for p in (*chain, path.resolve()))
        raise ConfigError(f"profile files extend one another in a cycle: {cycle}; remove one 'extends'")
    try:
        tree = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"profile file {path} is not valid YAML: {err}") from None
    if not isinstance(tree, dict):
        raise ConfigError(f"profile file {path} must hold a mapping of keys")
    parent = tree.pop(EXTENDS, None)
    if parent is None:
        return tree
    if not isinstance(parent, str):
        raise ConfigError(f"config key '{EXTENDS}' in {path}: expected a profile name or YAML file, got {parent!r}")
    if "profile" not in tree:
        raise ConfigError(f"profile file {path} extends '{parent}' but sets no 'profile': "
                          "give it its own name (its runs/ folder)")
    parent_path = _profile_path(parent, path.parent)
    if not parent_path.is_file():
        raise ConfigError(f"profile file {path} extends '{parent}': no file {parent_path}. "
                          f"Available profiles: {', '.join(available_profiles())}")
    return _merged(_read_profile(parent_path, (*chain, path.resolve())), tree)


def load_config(profile: str | Path = "demo", overrides: Mapping[str, Any] | None = None, *,
                output_root: str | Path | None = None) -> Config:
    """Read a profile (a name from ``profiles/`` or a YAML path), with the profiles it extends, and
    apply dotted overrides.

    ``None`` values in ``overrides`` are ignored, so notebook parameters left at
    ``None`` keep the profile's value. ``output_root``: where the run's files go
    (:class:`~dario_utils.core.paths.RunLayout`); the project root where None.
    """
    path = _profile_path(profile)
    if not path.is_file():
        raise ConfigError(
            f"unknown profile '{profile}': no file {path}. "
            f"Available profiles: {', '.join(available_profiles())}"
        )
    tree = _read_profile(path)
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(tree, dotted, value)
    return _finish(tree, output_root)


def _finish(tree: dict, output_root: str | Path | None) -> Config:
    """The checked :class:`Config` of a profile's ``tree``, writing under ``output_root`` (the project root where None)."""
    if "output_root" in tree:
        raise ConfigError("unknown config key 'output_root': the output root is no profile key; "
                          "set DARIO_OUTPUT_ROOT or pass output_root")
    config = _check_device(_build(Config, tree, ""))
    config.output_root = Path(output_root or paths.PROJECT_ROOT).expanduser().resolve()
    return config


def with_overrides(config: Config, overrides: Mapping[str, Any]) -> Config:
    """A copy of ``config`` with dotted ``overrides`` applied, keys and types checked as in
    :func:`load_config` (``None`` values set keys to null here: an override is meant)."""
    tree = config.to_dict()
    for dotted, value in overrides.items():
        _set_dotted(tree, dotted, value)
    return _finish(tree, config.output_root)
