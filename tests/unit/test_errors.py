"""Every error class of the project derives from one base, and says what went wrong in one line."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import components
import pipeline
from components import audio
from components.corpus import sources
from components.errors import MAX_LINE_CHARS, AccentPipelineError, UnusableClipError, first_line

# Modules that need what the test environment lacks are skipped, not failed: the walk is about classes.
_OPTIONAL_IMPORT_ERRORS = (ImportError,)


def _project_exception_classes() -> list[type[BaseException]]:
    classes: dict[str, type[BaseException]] = {}
    for package in (components, pipeline):
        for module_info in pkgutil.walk_packages(package.__path__, prefix=f"{package.__name__}."):
            try:
                module = importlib.import_module(module_info.name)
            except _OPTIONAL_IMPORT_ERRORS:
                continue
            for _, member in inspect.getmembers(module, inspect.isclass):
                if issubclass(member, BaseException) and member.__module__ == module.__name__:
                    classes[f"{member.__module__}.{member.__qualname__}"] = member
    return [classes[name] for name in sorted(classes)]


def test_every_error_class_derives_from_the_base() -> None:
    found = _project_exception_classes()
    assert len(found) > 10
    assert [error_class for error_class in found if not issubclass(error_class, AccentPipelineError)] == []


def test_a_read_error_and_a_decode_error_are_both_unusable_clips_but_not_each_other() -> None:
    read_error = sources.ClipReadError("missing file", "a.wav")
    decode_error = audio.AudioDecodeError("not audio: no MPEG audio frame", "a.mp3")
    assert isinstance(read_error, UnusableClipError) and isinstance(decode_error, UnusableClipError)
    assert not isinstance(read_error, audio.AudioDecodeError)
    assert (read_error.reason, str(read_error)) == ("missing file", "a.wav: missing file")
    assert decode_error.reason == "not audio: no MPEG audio frame"


def test_the_message_is_one_line_and_the_reason_defaults_to_it() -> None:
    error = AccentPipelineError("first\n  second")
    assert str(error) == "first second" == error.reason
    with pytest.raises(ValueError):
        raise UnusableClipError("empty file")


def test_first_line_of_an_error() -> None:
    assert first_line(OSError("\n  disk on fire \nsecond line")) == "disk on fire"
    assert first_line(ValueError("")) == "ValueError"
    assert len(first_line(RuntimeError("x" * 1000))) == MAX_LINE_CHARS
