"""YAMNet's class map CSV (``index,mid,display_name``).

The real model ships AudioSet's 521 class names. Offline weights are
untrained, so their class map names only row 0 (Speech, where every YAMNet
class map has it) and marks rows 1..520 as placeholders.
"""

from __future__ import annotations

import csv
import os

from components.yamnet import params

CLASS_MAP_FILENAME = "yamnet_class_map.csv"
CLASS_MAP_HEADER = ("index", "mid", "display_name")
PLACEHOLDER_PREFIX = "placeholder_"


def write_offline_class_map(path: str | os.PathLike) -> None:
    """Writes the class map of the offline weights.

    Row 0 is ``0,/m/09x0r,Speech``; rows 1..520 are ``i,placeholder_<i>,placeholder_<i>
    (untrained offline weights)``: the offline weights are untrained, so no
    score, Speech's included, means anything.

    Args:
        path: Path of the CSV file to write.
    """
    with open(path, "w", newline="", encoding="utf-8") as csv_file:
        writer = csv.writer(csv_file)
        writer.writerow(CLASS_MAP_HEADER)
        writer.writerow(
            [params.SPEECH_CLASS_INDEX, params.SPEECH_CLASS_MID, params.SPEECH_CLASS_DISPLAY_NAME]
        )
        for index in range(1, params.NUM_CLASSES):
            placeholder = f"{PLACEHOLDER_PREFIX}{index}"
            writer.writerow([index, placeholder, f"{placeholder} (untrained offline weights)"])


def read_display_names(path: str | os.PathLike | bytes) -> list[str]:
    """Reads the display names of a YAMNet class map, in index order.

    Args:
        path: Path of the CSV (for a loaded model: ``model.class_map_path().numpy()``).

    Returns:
        The ``display_name`` column.

    Raises:
        ValueError: If the file lacks the ``display_name`` column.
    """
    if isinstance(path, bytes):
        path = path.decode("utf-8")
    with open(path, newline="", encoding="utf-8") as csv_file:
        reader = csv.DictReader(csv_file)
        if reader.fieldnames is None or "display_name" not in reader.fieldnames:
            raise ValueError(f"{os.fspath(path)} is not a YAMNet class map (no display_name column)")
        return [row["display_name"] for row in reader]
