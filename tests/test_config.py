"""Tests of dario_utils.core.config: every profile loads and passes check_config; unknown keys and
wrong types are errors naming the dotted key; values that do not fit together; dotted
overrides; unknown profile names; profiles that extend others (the GPU profile, the recipe variants)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from dario_utils.core import paths
from dario_utils.core.config import (available_profiles, BeyondConfig, check_config, Config, ConfigError, EXTENDS,
                                     load_config, TrainConfig, with_overrides)
from dario_utils.core.registry import Registry
from dario_utils.evaluation.scorings import recipe_hash
from dario_utils.training import losses
from dario_utils.training.losses import check_loss

PROFILES = sorted(p.stem for p in paths.PROFILES_DIR.glob("*.yaml"))


def test_the_three_profiles_exist():
    assert {"demo", "imagenet-sample", "paper"} <= set(PROFILES)
    assert available_profiles() == PROFILES


@pytest.mark.parametrize("name", PROFILES)
def test_every_profile_loads(name: str):
    config = load_config(name)
    assert isinstance(config, Config)
    assert config.profile == name  # the runs/<profile>/ folder follows the file name
    raw = yaml.safe_load(paths.profile_file(name).read_text())
    raw.pop(EXTENDS, None)
    # every value written in the file arrives in the typed config
    for section, values in raw.items():
        if isinstance(values, dict) and section != "fractions":
            for key, value in values.items():
                assert getattr(getattr(config, section), key) == value, f"{name}: {section}.{key}"
        else:
            assert getattr(config, section) == values, f"{name}: {section}"
    assert 0 < config.small_size < config.data.image_size
    assert check_config(config) is config


def test_profile_yaml_path_loads(tmp_path: Path):
    path = tmp_path / "mine.yaml"
    path.write_text("profile: mine\ntrain:\n  epochs: 5\n")
    config = load_config(path)
    assert config.profile == "mine" and config.train.epochs == 5
    assert config.train.lr == Config().train.lr  # unspecified keys keep the defaults


@pytest.mark.parametrize("overrides, dotted", [
    ({"epochz": 1}, "epochz"),
    ({"train.epochz": 1}, "train.epochz"),
    ({"data.imagesize": 64}, "data.imagesize"),
    ({"trian.epochs": 1}, "trian"),
])
def test_unknown_key_names_dotted_key(overrides: dict, dotted: str):
    with pytest.raises(ConfigError) as err:
        load_config("demo", overrides)
    assert f"'{dotted}'" in str(err.value)
    assert "unknown" in str(err.value)


def test_unknown_key_in_yaml_file(tmp_path: Path):
    path = tmp_path / "bad.yaml"
    path.write_text("profile: bad\ntrain:\n  epochs: 2\n  epochz: 3\n")
    with pytest.raises(ConfigError, match=r"'train\.epochz'"):
        load_config(path)


@pytest.mark.parametrize("overrides, dotted, expected", [
    ({"train.epochs": "three"}, "train.epochs", "int"),
    ({"data.scale": "x"}, "data.scale", "float"),
    ({"train.epochs": 2.5}, "train.epochs", "int"),
    ({"train.epochs": True}, "train.epochs", "int"),
    ({"train.amp": "yes"}, "train.amp", "bool"),
    ({"train.crop": "big"}, "train.crop", "int or null"),
    ({"seed": "2020"}, "seed", "int"),
    ({"data.fractions": [0.6, 0.2, 0.2]}, "data.fractions", "dict"),
])
def test_wrong_type_names_key_and_expected_type(overrides: dict, dotted: str, expected: str):
    with pytest.raises(ConfigError) as err:
        load_config("demo", overrides)
    message = str(err.value)
    assert f"'{dotted}'" in message
    assert f"expected {expected}" in message


def test_section_must_be_a_mapping():
    with pytest.raises(ConfigError, match=r"'train'.*mapping"):
        load_config("demo", {"train": 3})
    with pytest.raises(ConfigError, match=r"train\.epochs\.x"):
        load_config("demo", {"train.epochs.x": 3})


def test_int_accepted_for_float():
    config = load_config("demo", {"data.scale": 1, "train.lr": 0})
    assert config.data.scale == 1.0 and type(config.data.scale) is float
    assert config.train.lr == 0.0 and type(config.train.lr) is float


def test_dotted_overrides_apply_and_keep_the_rest():
    base = load_config("demo")
    config = load_config("demo", {"train.epochs": 7, "eval.bootstrap": 10, "data.image_size": 64,
                                  "data_root": "/somewhere", "teacher.weights": "random", "train.crop": 32})
    assert (config.train.epochs, config.eval.bootstrap, config.data.image_size) == (7, 10, 64)
    assert config.data_root == "/somewhere" and config.teacher.weights == "random" and config.train.crop == 32
    assert config.small_size == int(64 * 0.32)
    # untouched keys keep the profile's values
    assert config.train.lr == base.train.lr and config.sr == base.sr and config.data.scale == base.data.scale


def test_none_override_is_ignored():
    base = load_config("demo")
    config = load_config("demo", {"train.epochs": None, "device": None, "data_root": None, "eval.judge": None})
    assert config == base
    assert config.device == "cpu" and config.train.epochs == base.train.epochs


def test_unknown_profile_lists_available():
    with pytest.raises(ConfigError) as err:
        load_config("no-such-profile")
    message = str(err.value)
    assert "no-such-profile" in message
    for name in PROFILES:
        assert name in message


def test_invalid_yaml_is_config_error(tmp_path: Path):
    path = tmp_path / "broken.yaml"
    path.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)


@pytest.mark.parametrize("overrides, message", [
    ({"train.lr_schedule": "step"}, r"'train\.lr_schedule': unknown schedule 'step'; choose from constant, cosine$"),
    ({"train.checkpoint_every": 0}, r"'train\.checkpoint_every': 0 must be at least 1"),
    ({"train.frozen_blocks": None, "train.crop": 129}, r"crop 129 must be between 1 and data\.image_size \(128\)"),
    ({"train.frozen_blocks": None, "train.crop": 0}, r"crop 0 must be between 1 and data\.image_size"),
    ({"train.frozen_blocks": 24}, r"'train\.frozen_blocks': 24 is not between 0 and sr\.nb \(23\)"),
    ({"train.hflip": 0.5}, "flips and crops would change"),
    ({"train.crop": 64}, "flips and crops would change"),
    ({"beyond.judge": "efficientnet_lite0"}, "'beyond.judge': efficientnet_lite0 is the teacher"),
])
def test_check_config_refuses_values_that_do_not_fit(overrides: dict, message: str):
    config = with_overrides(load_config("demo"), overrides)  # loading does not check: entry points do
    with pytest.raises(ConfigError, match=message):
        check_config(config)


def test_check_config_accepts_a_whole_net_with_flips_and_crops():
    config = with_overrides(load_config("demo"), {"train.frozen_blocks": None, "train.hflip": 0.5,
                                                 "train.crop": 128, "train.loss": "kl", "train.temperature": 2})
    assert check_config(config) is config
    check_loss(config.train)


# ---------------------------------------------------------------- the loss registry


@pytest.mark.parametrize("overrides, message", [
    ({"train.loss": "hinge"}, r"'train\.loss': unknown loss 'hinge'; choose from mse, kl$"),
    ({"train.loss": "kl", "train.temperature": 0}, r"'train\.temperature': 0\.0 must be positive"),
])
def test_check_loss_refuses_a_loss_that_is_not_registered_or_its_settings(overrides: dict, message: str):
    config = with_overrides(load_config("demo"), overrides)
    assert check_config(config) is config  # the loss is the training floor's check
    with pytest.raises(ConfigError, match=message):
        check_loss(config.train)


def test_a_registry_names_its_key_and_choices_and_refuses_a_name_twice():
    registry: Registry[int] = Registry("train.thing", "thing")
    registry.add("one", 1)
    registry.add("two", 2)
    assert (registry.get("two"), registry.names(), list(registry)) == (2, ("one", "two"), [1, 2])
    with pytest.raises(ConfigError, match=r"^config key 'train\.thing': unknown thing 'three'; choose from one, two$"):
        registry.get("three")
    with pytest.raises(ValueError, match="already"):
        registry.add("one", 3)


def test_a_loss_added_to_the_registry_is_checked_trained_and_ablated(monkeypatch: pytest.MonkeyPatch):
    registry: Registry[losses.LogitLoss] = Registry("train.loss", "loss")
    for name in losses.LOSSES.names():
        registry.add(name, losses.LOSSES.get(name))
    registry.add("l1_logits", losses.LogitLoss(lambda logits, reference, train: (logits - reference).abs().mean(),
                                               lambda beyond: [losses.Variant("l1_logits", "logit L1", {})]))
    monkeypatch.setattr(losses, "LOSSES", registry)
    train = TrainConfig(loss="l1_logits")
    losses.check_loss(train)
    logits, reference = torch.zeros(2, 3), torch.ones(2, 3)
    assert losses.logit_loss(logits, reference, train).item() == 1.0
    assert "l1_logits" in [v.key for v in losses.ablation_variants(BeyondConfig())]
    with pytest.raises(ConfigError, match="choose from mse, kl, l1_logits$"):
        losses.check_loss(TrainConfig(loss="hinge"))


# ---------------------------------------------------------------- profiles that extend others


def _flat(tree: dict, prefix: str = "") -> dict:
    """Dotted key -> value of a nested mapping (lists are values)."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def differences(config: Config, base: Config) -> dict:
    """The dotted keys where ``config`` differs from ``base``, with ``config``'s values."""
    mine, theirs = _flat(config.to_dict()), _flat(base.to_dict())
    return {key: value for key, value in mine.items() if theirs[key] != value}


def test_the_gpu_profile_is_imagenet_sample_with_its_differences():
    expected = {"profile": "imagenet-sample-gpu", "data_root": "gpu-bundle/imagenet-sample-256", "device": "cuda",
                "num_threads": None, "data.num_workers": 8, "train.epochs": 40, "train.batch_size": 16,
                "train.lr": 1e-4, "train.lr_schedule": "constant", "train.hflip": 0.5, "train.vflip": 0.1,
                "train.flipped_copies": False, "train.frozen_blocks": None, "train.checkpoint_every": 10,
                "eval.batch_size": 64, "beyond.scales": [0.25, 0.32, 0.5], "beyond.train_per_scale": True,
                "beyond.loss_ablation": True, "beyond.ablation_epochs": 10}
    assert differences(load_config("imagenet-sample-gpu"), load_config("imagenet-sample")) == expected


VARIANTS = pd.read_csv(paths.PROJECT_ROOT / "figures" / "imagenet-sample" / "variants.csv", dtype=str,
                       keep_default_na=False)
SETTINGS = {"frozen_blocks": int, "flipped_copies": lambda v: v == "true", "lr": float, "lr_schedule": str,
            "epochs": int, "seed": int}
"""The columns of variants.csv that are settings of the ``train`` section, read as the config types them."""


@pytest.mark.parametrize("row", VARIANTS.to_dict("records"), ids=list(VARIANTS["profile"]))
def test_every_recipe_variant_is_a_profile_that_changes_the_row_s_settings(row: dict):
    base = load_config("imagenet-sample")
    config = load_config(row["profile"])
    if row["epochs"] == "0":  # the untrained start: the recipe's own run scores it
        assert row["profile"] == "imagenet-sample"
        return
    settings = {f"train.{key}": read(row[key]) for key, read in SETTINGS.items() if row[key]}
    changed = {key: value for key, value in settings.items() if _flat(base.to_dict())[key] != value}
    assert differences(config, base) == ({} if row["profile"] == "imagenet-sample" else
                                         {"profile": row["profile"], **changed})
    assert all(_flat(config.to_dict())[key] == value for key, value in settings.items())


def test_the_variants_name_every_recipe_profile_once():
    other_questions = {"imagenet-sample-gpu", "imagenet-sample-two-teachers"}  # not variants of the CPU recipe
    recipes = {name for name in PROFILES if name.startswith("imagenet-sample") and name not in other_questions}
    assert set(VARIANTS["profile"]) == recipes
    trained = VARIANTS[VARIANTS["epochs"] != "0"]
    assert trained["profile"].is_unique


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


def test_extends_merges_mappings_and_replaces_the_rest(tmp_path: Path):
    _write(tmp_path, "base", "profile: base\ndata_root: /data\ndata:\n  image_size: 128\n"
           "  fractions: {train: 0.5, val: 0.25, test: 0.25}\n"
           "train:\n  epochs: 5\n  crop: 64\nbeyond:\n  scales: [0.25, 0.5]\n")
    _write(tmp_path, "middle", "extends: base.yaml\nprofile: middle\ntrain:\n  lr: 0.5\n  crop: null\n")
    child = _write(tmp_path, "child", "extends: middle.yaml\nprofile: child\n"
                   "data:\n  fractions: {train: 0.7, val: 0.05}\nbeyond:\n  scales: [0.32]\n")
    config = load_config(child)
    assert (config.profile, config.data_root, config.data.image_size) == ("child", "/data", 128)
    assert config.data.fractions == {"train": 0.7, "val": 0.05, "test": 0.25}  # key by key
    assert (config.train.epochs, config.train.lr, config.train.crop) == (5, 0.5, None)  # null replaces
    assert config.beyond.scales == [0.32]  # lists replace
    assert load_config(child, {"train.epochs": 2}).train.epochs == 2


def test_extends_by_profile_name():
    config = load_config("imagenet-sample-lr2e-4-cosine-5ep-seed2")  # a chain: seed2 -> cosine-5ep -> imagenet-sample
    assert (config.train.seed, config.train.epochs, config.train.frozen_blocks) == (2, 5, 20)


def _one_line_error(path: Path) -> str:
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert "\n" not in message
    return message


def test_extends_refuses_a_cycle_a_missing_parent_a_bad_value_and_a_borrowed_name(tmp_path: Path):
    a = _write(tmp_path, "a", "extends: b.yaml\nprofile: a\n")
    b = _write(tmp_path, "b", "extends: a.yaml\nprofile: b\n")
    assert _one_line_error(a) == f"profile files extend one another in a cycle: {a} -> {b} -> {a}; remove one 'extends'"
    orphan = _write(tmp_path, "orphan", "extends: no-such-profile\nprofile: orphan\n")
    message = _one_line_error(orphan)
    assert message.startswith(f"profile file {orphan} extends 'no-such-profile': no file ")
    assert "Available profiles: demo" in message
    nameless = _write(tmp_path, "nameless", "extends: demo\ntrain:\n  epochs: 1\n")
    assert _one_line_error(nameless) == (f"profile file {nameless} extends 'demo' but sets no 'profile': "
                                         "give it its own name (its runs/ folder)")
    listed = _write(tmp_path, "listed", "extends: [demo]\nprofile: listed\n")
    assert "config key 'extends'" in _one_line_error(listed)
    typed = _write(tmp_path, "typed", "extends: demo\nprofile: typed\ntrain:\n  epochs: three\n")
    assert _one_line_error(typed) == "config key 'train.epochs': expected int, got 'three'"


def test_extra_teachers_are_other_classifiers_and_no_unseen_judge() -> None:
    assert load_config("demo").teachers == ["efficientnet_lite0"]
    two = load_config("demo", {"train.extra_teachers": ["efficientnet_lite1"], "crossval.judges": ["efficientnet_lite2"]})
    assert two.teachers == ["efficientnet_lite0", "efficientnet_lite1"]
    for overrides, key in [({"train.extra_teachers": ["efficientnet_lite0"]}, "train.extra_teachers"),
                           ({"train.extra_teachers": ["efficientnet_lite1", "efficientnet_lite1"]}, "train.extra_teachers"),
                           ({"train.extra_teachers": ["efficientnet_lite1"], "crossval.judges": ["efficientnet_lite1"]},
                            "crossval.judges"),
                           ({"train.extra_teachers": ["efficientnet_lite2"], "crossval.judges": ["efficientnet_lite1"]},
                            "'beyond.judge': efficientnet_lite2 is an extra teacher")]:
        with pytest.raises(ConfigError, match=key):
            check_config(load_config("demo", overrides))


def test_a_neutral_new_key_keeps_the_published_recipes() -> None:
    """train.extra_teachers came after results were published: empty, it leaves every recipe hash as it
    was; set, it makes another recipe."""
    demo = load_config("demo")
    assert recipe_hash(demo) == "8f8affd75453"  # figures/demo/provenance.json's recipe
    two = load_config("demo", {"train.extra_teachers": ["efficientnet_lite1"], "crossval.judges": ["efficientnet_lite2"]})
    assert recipe_hash(two) != recipe_hash(demo)
