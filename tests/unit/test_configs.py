import pytest

from components import features
from components.errors import InvalidArgumentError
from components.trainer.config import TrainerConfig
from pipeline import configs


def test_defaults_are_the_reference_settings() -> None:
    settings = configs.PipelineSettings()
    assert settings.class_names == features.DEFAULT_CLASS_NAMES
    assert settings.class_names[-1] == features.NOT_SPEECH_CLASS_NAME
    assert (settings.epochs, settings.batch_size, settings.learning_rate) == (100, 64, 1.9644e-5)
    assert settings.split_strategy == "speaker"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("split_strategy", "random", "split_strategy"),
        ("eval_fraction", 1.0, "eval_fraction"),
        ("max_bad_fraction", 1.5, "max_bad_fraction"),
        ("epochs", 0, "epochs"),
        ("min_auc", 2.0, "min_auc"),
        ("class_names", ("Irish", "Welsh"), "Not a speech"),
    ],
)
def test_bad_settings_are_rejected(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        configs.PipelineSettings(**{field: value})


def test_accent_codes_must_map_into_the_vocabulary() -> None:
    with pytest.raises(ValueError, match="Cornish"):
        configs.PipelineSettings(accent_codes={"co": "Cornish"})


def test_trainer_hyperparameters_come_from_the_trainer_config() -> None:
    settings = configs.PipelineSettings(epochs=3, batch_size=8)
    trainer_config = settings.trainer_config()
    assert (trainer_config.epochs, trainer_config.batch_size) == (3, 8)
    assert trainer_config.class_names == settings.class_names
    assert configs.PipelineSettings().trainer_config() == TrainerConfig()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("non_speech_rule", "loud"),
        ("embedding_batch_patches", 0),
        ("learning_rate", 0.0),
        ("yamnet_handle", ""),
    ],
)
def test_every_check_lives_in_the_settings(field: str, value: object) -> None:
    with pytest.raises(InvalidArgumentError, match=field):
        configs.PipelineSettings(**{field: value})
