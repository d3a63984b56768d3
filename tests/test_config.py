"""Tests of dario_utils.core.config: every profile loads and passes check_config; unknown keys and
wrong types are errors naming the dotted key; values that do not fit together; dotted
overrides; unknown profile names."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dario_utils.core import paths
from dario_utils.core.config import available_profiles, check_config, Config, ConfigError, load_config, with_overrides

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
    ({"train.loss": "hinge"}, r"'train\.loss': unknown loss 'hinge'; choose from mse, kl$"),
    ({"train.loss": "kl", "train.temperature": 0}, r"'train\.temperature': 0\.0 must be positive"),
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
