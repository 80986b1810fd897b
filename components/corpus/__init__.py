"""OpenSLR-83 corpus reading: index, labels, speaker split and quarantine.

The public names are re-exported here; ``read_corpus`` is the entry point.
"""

from components.corpus.labels import ClipLabels, LabelError, parse_clip_name
from components.corpus.quarantine import QuarantineEntry, read_quarantine_csv, write_quarantine_csv
from components.corpus.reader import CorpusIndex, read_corpus
from components.corpus.records import ClipRecord, read_clip_index, write_clip_index
from components.corpus.sources import ClipReadError, corpus_fingerprint, read_clip_bytes
from components.corpus.split import SPLIT_STRATEGIES, assign_splits, speaker_fraction

__all__ = [
    "SPLIT_STRATEGIES",
    "ClipLabels",
    "ClipReadError",
    "ClipRecord",
    "CorpusIndex",
    "LabelError",
    "QuarantineEntry",
    "assign_splits",
    "corpus_fingerprint",
    "parse_clip_name",
    "read_clip_bytes",
    "read_clip_index",
    "read_corpus",
    "read_quarantine_csv",
    "speaker_fraction",
    "write_clip_index",
    "write_quarantine_csv",
]
