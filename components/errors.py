"""The project's errors: one base class, subclassed where a caller must tell cases apart.

Every error the project raises on purpose derives from ``AccentPipelineError``.
Its ``reason`` is short and specific (a clip's reason goes to the quarantine
report as it is) and its ``str`` is one line. The command line
(``pipeline/cli.py``, ``main``) is the only place that turns an error into an
exit code and a message; library code raises.

A subclass that must still be caught as a ``ValueError`` or ``RuntimeError``
by existing callers derives from that too, after the project's base.

``first_line`` words any exception, the project's or a library's, in one short
line, for quarantine reasons and log messages.
"""

from __future__ import annotations

# The longest one-line description kept; decoder and filesystem messages can run on for pages.
MAX_LINE_CHARS = 200


class AccentPipelineError(Exception):
    """An error the project raises on purpose: a refused input, a failed step, a bad setting.

    Attributes:
        reason: A short, specific reason; the one-line message when a subclass sets none.
    """

    _reason: str | None = None

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self._reason = reason

    @property
    def reason(self) -> str:
        """The short reason, e.g. a quarantine reason without the file name."""
        return self._reason if self._reason is not None else str(self)

    @reason.setter
    def reason(self, value: str) -> None:
        self._reason = value

    def __str__(self) -> str:
        """The message on one line: line breaks and runs of spaces become single spaces."""
        return " ".join(super().__str__().split())


class InvalidArgumentError(AccentPipelineError, ValueError):
    """A bad setting, flag or argument, refused before any work starts."""


class UnusableClipError(AccentPipelineError, ValueError):
    """A clip that cannot be used; its ``reason`` goes to the quarantine report.

    ``ClipReadError`` (the bytes cannot be read) and ``AudioDecodeError`` (the
    bytes are no audio the decoders take) are its two kinds.

    Attributes:
        reason: A short, specific reason, written to the quarantine report as it is.
        filename: The name of the clip's file, for messages; "" when unknown.
    """

    def __init__(self, reason: str, filename: str = "") -> None:
        super().__init__(f"{filename}: {reason}" if filename else reason, reason=reason)
        self.filename = filename


def first_line(error: BaseException) -> str:
    """Returns the first non-empty line of an error's message, shortened, or the error's class name.

    TensorFlow's ``OpError`` keeps its own text in ``message`` (its ``str`` may
    add the op's context), so that is preferred when present.

    Args:
        error: The exception.

    Returns:
        At most ``MAX_LINE_CHARS`` characters of the message's first non-empty
        line, stripped; the class name when the message is empty.
    """
    message = getattr(error, "message", None) or str(error)
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    return (lines[0] if lines else type(error).__name__)[:MAX_LINE_CHARS]
