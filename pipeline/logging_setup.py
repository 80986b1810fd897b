"""The command line's logging: the format, and what TFX and Beam may show of a run.

Without ``--verbose`` a run shows the project's own log lines, TFX's progress
(``Component ... is running`` / ``finished``) and warnings, and the project's
log lines from inside Beam workers; TFX's artifact dumps and Beam's chatter are
left out. With ``--verbose`` every record at DEBUG and above is shown.
"""

from __future__ import annotations

import logging
import re

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _TfxProgressFilter(logging.Filter):
    """Keeps TFX's component-by-component progress and its warnings, not its artifact dumps."""

    # A warning TFX 1.16 logs for every input resolution of LocalDagRunner; it says nothing about the run.
    _NOISE = ("ArtifactQuery.property_predicate is not supported",)

    def filter(self, record: logging.LogRecord) -> bool:
        """Whether to show a record of the ``absl`` logger."""
        message = record.getMessage()
        if message.startswith(self._NOISE):
            return False
        return record.levelno >= logging.WARNING or (
            message.startswith("Component ") and message.rstrip(".").endswith(("running", "finished"))
        )


class _BeamWorkerFilter(logging.Filter):
    """Shows what the project's own code logs inside Beam workers, and Beam's own warnings.

    In multi-processing mode the DirectRunner forwards each worker's log lines
    as ``Worker: severity: ... message: "..." log_location: "..."``; the ones
    from this project (progress of the embedding job) are shown as plain text.
    """

    _FIELD = re.compile(r'(message|log_location): "((?:[^"\\]|\\.)*)"')

    def filter(self, record: logging.LogRecord) -> bool:
        """Whether to show a record of the ``apache_beam`` logger, rewritten if it is a worker's."""
        message = record.getMessage()
        if not message.startswith("Worker: "):
            return record.levelno >= logging.WARNING
        fields = dict(self._FIELD.findall(message))
        if "/components/" not in fields.get("log_location", ""):
            return False
        record.msg, record.args = f"[worker] {fields.get('message', '')}", ()
        return True


class ProgressFilter(logging.Filter):
    """What a run shows without ``--verbose``: the TFX and Beam rules on their records, every other record.

    Records of the ``absl`` logger (TFX) pass when they are a component's
    progress or a warning; records of ``apache_beam`` and its children pass
    when they are a warning or a worker's line logged by the project's code
    (rewritten as ``[worker] MESSAGE``). Install it on handlers, not loggers:
    a logger's filters do not apply to its children's records.
    """

    def __init__(self) -> None:
        """Creates the filter."""
        super().__init__()
        self._tfx = _TfxProgressFilter()
        self._beam = _BeamWorkerFilter()

    def filter(self, record: logging.LogRecord) -> bool:
        """Whether to show a record (a Beam worker's may be rewritten)."""
        if record.name == "absl":
            return self._tfx.filter(record)
        if record.name == "apache_beam" or record.name.startswith("apache_beam."):
            return self._beam.filter(record)
        return True


def configure_logging(verbose: bool) -> None:
    """Sets up the root logger for one command, as ``accent-pipeline`` does before it runs one.

    Args:
        verbose: Show every record at DEBUG and above; otherwise INFO and above, through
            ``ProgressFilter``.
    """
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format=LOG_FORMAT, datefmt="%H:%M:%S"
    )
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.INFO)
    if not verbose:
        # On the handlers, not the loggers: a logger's filters do not apply to its children's records.
        for handler in logging.getLogger().handlers:
            handler.addFilter(ProgressFilter())
