"""OpenSLR-83 corpus reading: index, labels, speaker split and quarantine.

The public names are re-exported here; ``read_corpus`` is the entry point.
"""

from components.corpus.labels import ClipLabels, LabelError, parse_clip_name
from components.corpus.quarantine import (
    QUARANTINE_COLUMNS,
    QuarantineEntry,
    QuarantineWriter,
    TooManyBadEntriesError,
    copy_quarantine_report,
    count_quarantine_csv,
    format_quarantine_line,
    iterate_quarantine_csv,
    read_quarantine_csv,
    too_many_bad_entries_message,
    write_quarantine_csv,
)
from components.corpus.reader import CorpusIndex, read_corpus
from components.corpus.records import (
    ClipRecord,
    check_clip_index_header,
    parse_clip_line,
    read_clip_index,
    write_clip_index,
)
from components.corpus.sources import MAX_CLIP_BYTES, ClipReadError, corpus_fingerprint, read_clip_bytes
from components.corpus.split import SPLIT_STRATEGIES, assign_splits, speaker_fraction

__all__ = [
    "MAX_CLIP_BYTES",
    "QUARANTINE_COLUMNS",
    "SPLIT_STRATEGIES",
    "ClipLabels",
    "ClipReadError",
    "ClipRecord",
    "CorpusIndex",
    "LabelError",
    "QuarantineEntry",
    "QuarantineWriter",
    "TooManyBadEntriesError",
    "assign_splits",
    "check_clip_index_header",
    "copy_quarantine_report",
    "corpus_fingerprint",
    "count_quarantine_csv",
    "format_quarantine_line",
    "iterate_quarantine_csv",
    "parse_clip_line",
    "parse_clip_name",
    "read_clip_bytes",
    "read_clip_index",
    "read_corpus",
    "read_quarantine_csv",
    "speaker_fraction",
    "too_many_bad_entries_message",
    "write_clip_index",
    "write_quarantine_csv",
]
