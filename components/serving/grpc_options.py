"""gRPC settings shared by the serving server and the prediction client."""

from __future__ import annotations

import math

from components import features

# Bytes of a request besides its audio samples.
REQUEST_OVERHEAD_BYTES = 4 * 1024 * 1024

# Bytes of one float32 sample.
SAMPLE_BYTES = 4


def max_message_bytes_for_audio(max_audio_seconds: float) -> int:
    """Returns the largest message that carries ``max_audio_seconds`` of 16 kHz float32 audio.

    Args:
        max_audio_seconds: Longest audio a request carries, in seconds.

    Returns:
        The samples' bytes plus ``REQUEST_OVERHEAD_BYTES`` for the rest of the request.

    Raises:
        ValueError: If ``max_audio_seconds`` is not positive.
    """
    if not max_audio_seconds > 0:
        raise ValueError(f"max_audio_seconds must be positive, got {max_audio_seconds}")
    return math.ceil(max_audio_seconds * features.SAMPLE_RATE) * SAMPLE_BYTES + REQUEST_OVERHEAD_BYTES


# Largest gRPC message: ten minutes of 16 kHz float32 audio plus 4 MiB for the rest of the request.
DEFAULT_MAX_MESSAGE_BYTES = max_message_bytes_for_audio(10 * 60)


def grpc_message_options(max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> list[tuple[str, int]]:
    """Returns the gRPC channel or server options that admit messages up to ``max_message_bytes``.

    Args:
        max_message_bytes: Largest message sent or received, in bytes.

    Returns:
        Options for ``grpc.server`` or ``grpc.insecure_channel``.
    """
    return [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
    ]
