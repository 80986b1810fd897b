"""How an exception is worded in one line, for quarantine reasons and log messages."""

from __future__ import annotations

# The longest one-line description kept; decoder and filesystem messages can run on for pages.
MAX_LINE_CHARS = 200


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
