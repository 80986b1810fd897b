"""gRPC settings shared by the serving server and the prediction client."""

from __future__ import annotations

from components import features

# Largest gRPC message: ten minutes of 16 kHz float32 audio plus 4 MiB for the rest of the request.
DEFAULT_MAX_MESSAGE_BYTES = 10 * 60 * features.SAMPLE_RATE * 4 + 4 * 1024 * 1024


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
