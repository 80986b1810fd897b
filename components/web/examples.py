"""A few example clips to click: one per accent of a corpus, such as the demo corpus."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from components import audio
from components.corpus import labels

logger = logging.getLogger(__name__)

# Most example clips the page shows.
DEFAULT_MAX_EXAMPLES = 6


def find_example_clips(
    directory: str | os.PathLike[str], max_examples: int = DEFAULT_MAX_EXAMPLES
) -> list[Path]:
    """Picks up to ``max_examples`` audio files from a folder: the first clip of each accent, then others.

    Files whose names carry an OpenSLR-83 accent code are spread over the
    accents; other audio files come after them. Files are taken in name order,
    so the choice is the same from run to run.

    Args:
        directory: A corpus folder (searched recursively) or any folder of audio files.
        max_examples: Most clips returned.

    Returns:
        The clips' paths; empty when the folder holds no audio file.

    Raises:
        FileNotFoundError: If ``directory`` is not a folder.
    """
    root = Path(directory)
    if not root.is_dir():
        raise FileNotFoundError(f"examples folder {root} does not exist or is not a folder")
    clips = sorted(
        path for path in root.rglob("*") if path.suffix.lower() in audio.AUDIO_EXTENSIONS and path.is_file()
    )
    first_per_accent: dict[str, Path] = {}
    for clip in clips:
        try:
            accent = labels.parse_clip_name(clip.stem).accent
        except labels.LabelError:
            continue
        first_per_accent.setdefault(accent, clip)
    chosen = list(first_per_accent.values())
    chosen += [clip for clip in clips if clip not in chosen]
    logger.info(
        "Example clips from %s: %d of %d audio files", root, min(len(chosen), max_examples), len(clips)
    )
    return chosen[:max_examples]
