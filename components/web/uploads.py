"""An uploaded or recorded file to a 16 kHz waveform, within the server's limits; no file is kept.

The format is told by the file's bytes (``components.audio``), never by its
name, so a text file renamed ``.wav`` is refused as "not audio". The size and
duration limits are the server's: a file larger than one gRPC message, or
audio longer than the server admits, is refused before it is sent.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Collection
from pathlib import Path

import numpy as np

from components import audio, features
from components.web.serving import NO_FILE, NOT_AUDIO, TOO_LARGE, TOO_LONG, PageError

logger = logging.getLogger(__name__)


def file_digest(path: str | os.PathLike[str]) -> str:
    """Returns the SHA-256 of a file's bytes, to recognise copies of the example clips."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_upload(
    path: str | os.PathLike[str],
    max_file_bytes: int,
    keep_digests: Collection[str] = (),
) -> tuple[bytes, str]:
    """Reads an uploaded file and deletes it, unless it is a copy of an example clip.

    Args:
        path: The file as the page received it (in the page's upload folder).
        max_file_bytes: Largest file accepted, in bytes.
        keep_digests: SHA-256 digests of files to keep (the example clips, which the page offers again).

    Returns:
        The file's bytes and its name.

    Raises:
        PageError: ``NO_FILE`` if the file cannot be read, ``TOO_LARGE`` if it
            is over ``max_file_bytes``. The file is deleted in both cases too.
    """
    file_path = Path(path)
    try:
        try:
            size = file_path.stat().st_size
            if size > max_file_bytes:
                raise PageError(
                    TOO_LARGE,
                    f"File too large: {file_path.name} has {size / 1e6:.1f} MB; the limit is "
                    f"{max_file_bytes / 1e6:.1f} MB, one request to the server.",
                )
            encoded = file_path.read_bytes()
        except OSError as error:
            raise PageError(NO_FILE, f"Cannot read the uploaded file: {error.strerror or error}") from error
    finally:
        _delete_unless_kept(file_path, keep_digests)
    return encoded, file_path.name


def _delete_unless_kept(file_path: Path, keep_digests: Collection[str]) -> None:
    """Deletes an uploaded file, and its folder when it is left empty, unless it is an example's copy."""
    try:
        if keep_digests and file_digest(file_path) in keep_digests:
            return
        file_path.unlink()
    except OSError as error:
        if file_path.exists():
            logger.warning("Could not delete the uploaded file %s: %s", file_path, error)
        return
    try:
        file_path.parent.rmdir()
    except OSError:
        logger.debug("The upload folder %s is not empty; kept", file_path.parent)


def decode_upload(encoded: bytes, filename: str, max_audio_seconds: float) -> np.ndarray:
    """Decodes an upload to 16 kHz mono samples, as ``accent-pipeline predict`` does.

    Args:
        encoded: The file's bytes.
        filename: The file's name, for messages.
        max_audio_seconds: Longest audio accepted, in seconds (the server's limit).

    Returns:
        float32 samples in [-1, 1] at 16 kHz.

    Raises:
        PageError: ``NOT_AUDIO`` if the bytes are not audio the pipeline decodes
            (or hold no samples), ``TOO_LONG`` if the audio is over ``max_audio_seconds``.
    """
    try:
        waveform = audio.load_waveform(encoded, filename, features.SAMPLE_RATE, max_seconds=max_audio_seconds)
    except audio.AudioDecodeError as error:
        if error.reason.startswith("too long"):
            raise PageError(
                TOO_LONG,
                f"Audio too long: {filename} is {error.reason.split(':', 1)[1].split(',')[0].strip()}; "
                f"the server accepts at most {max_audio_seconds:g} s.",
            ) from error
        raise PageError(
            NOT_AUDIO,
            f"Not audio: {filename} cannot be decoded as WAV, FLAC, Ogg Vorbis or MP3 ({error.reason}).",
        ) from error
    except Exception as error:  # Any other decoder failure is this upload's, never the page's.
        raise PageError(
            NOT_AUDIO, f"Not audio: {filename} cannot be decoded ({type(error).__name__})."
        ) from error
    if waveform.size == 0:
        raise PageError(NOT_AUDIO, f"Not audio: {filename} holds no samples.")
    if waveform.size > max_audio_seconds * features.SAMPLE_RATE:
        raise PageError(
            TOO_LONG,
            f"Audio too long: {filename} is {waveform.size / features.SAMPLE_RATE:.1f} s; "
            f"the server accepts at most {max_audio_seconds:g} s.",
        )
    return waveform
