"""What the Trainer's and the Tuner's configs share: checks, and their round trip through ``custom_config``.

TFX hands a component function its settings as ``FnArgs.custom_config``, a JSON
dictionary. ``TrainerConfig`` (``components/trainer/config.py``) and
``TunerConfig`` (``components/tuner/config.py``) are frozen dataclasses whose
field names are the keys; the helpers here write them in JSON types and read
them back strictly, so that a step never silently runs on a default.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping, Sequence
from typing import Any, TypeVar

from components.errors import InvalidArgumentError

ConfigType = TypeVar("ConfigType")


def check_class_names(class_names: Any) -> tuple[str, ...]:
    """Checks a label vocabulary: at least two unique, non-empty strings.

    Args:
        class_names: The class names, in label-id order.

    Returns:
        The names as a tuple.

    Raises:
        InvalidArgumentError: If they are not at least two unique, non-empty strings.
    """
    if (
        isinstance(class_names, str)
        or not isinstance(class_names, (tuple, list))
        or len(class_names) < 2
        or not all(isinstance(name, str) and name for name in class_names)
    ):
        raise InvalidArgumentError(f"class_names must be at least two non-empty strings, got {class_names!r}")
    if len(set(class_names)) != len(class_names):
        raise InvalidArgumentError(f"class_names must be unique, got {class_names!r}")
    return tuple(class_names)


def check_integers(config: object, minimums: Sequence[tuple[str, int]]) -> None:
    """Checks that each named field of ``config`` is an integer (not a bool) of at least its minimum.

    Raises:
        InvalidArgumentError: Naming the first field that is not.
    """
    for name, minimum in minimums:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise InvalidArgumentError(f"{name} must be an integer >= {minimum}, got {value!r}")


def to_custom_config(config: Any) -> dict[str, Any]:
    """A config dataclass as ``custom_config``: every field under its own name, in JSON types."""
    content = dataclasses.asdict(config)
    return {name: list(value) if isinstance(value, tuple) else value for name, value in content.items()}


def from_custom_config(
    config_type: type[ConfigType],
    custom_config: Mapping[str, Any] | None,
    step_name: str,
    optional_keys: Collection[str] = (),
) -> ConfigType:
    """Reads and checks a config dataclass from ``custom_config``.

    Args:
        config_type: The dataclass.
        custom_config: ``FnArgs.custom_config``, as ``to_custom_config`` wrote it.
        step_name: The step, for the error messages (``Trainer``, ``Tuner``).
        optional_keys: Fields that may be missing, taking their defaults.

    Returns:
        The config.

    Raises:
        InvalidArgumentError: If the config is missing, lacks a required key, has an unknown key or a
            bad value.
    """
    if custom_config is None:
        raise InvalidArgumentError(f"The {step_name} needs a custom_config; got None")
    names = {field.name for field in dataclasses.fields(config_type)}
    unknown = sorted(set(custom_config) - names)
    if unknown:
        raise InvalidArgumentError(f"The {step_name}'s custom_config has unknown keys {unknown}")
    missing = sorted(names - set(custom_config) - set(optional_keys))
    if missing:
        raise InvalidArgumentError(f"The {step_name}'s custom_config lacks the required keys {missing}")
    return config_type(**custom_config)
