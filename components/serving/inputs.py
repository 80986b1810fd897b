"""Input checks of the local server: a request's tensors against a signature and the size limits.

``check_inputs`` reads only the names, dtypes and declared shapes, so it runs
before anything is decoded: a TensorProto may declare millions of elements and
carry two, which decoding would expand. ``decode_inputs`` checks, then decodes.
Every refusal is INVALID_ARGUMENT and names the expected input, e.g.
"expected input 'waveform': float32 tensor of shape [num_samples]".

Limits (``InputLimits``): the ``waveform`` input may declare at most
``max_audio_seconds`` of 16 kHz samples (``DEFAULT_MAX_AUDIO_SECONDS``, 600, by
default), and no input may declare more elements than a message of
``max_message_bytes`` could carry.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import grpc
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2

from components import features
from components.serving.defaults import DEFAULT_MAX_AUDIO_SECONDS
from components.serving.grpc_options import DEFAULT_MAX_MESSAGE_BYTES
from components.serving.rpc import ServingError

# Names of a signature input's unknown dimensions, for error messages.
_DIMENSION_NAMES: dict[str, tuple[str, ...]] = {features.WAVEFORM_INPUT_KEY: ("num_samples",)}


# Fewest bytes one element takes in a TensorProto, by dtype: float and complex values are
# fixed-width; integers, booleans and halves are varints (1 byte at least); strings take a
# length byte at least.
_MIN_BYTES_PER_ELEMENT: dict[int, int] = {
    types_pb2.DT_FLOAT: 4,
    types_pb2.DT_DOUBLE: 8,
    types_pb2.DT_COMPLEX64: 8,
    types_pb2.DT_COMPLEX128: 16,
}


def _describe_shape(input_name: str, shape: tf.TensorShape) -> str:
    if shape.rank is None:
        return "any shape"
    dimension_names = _DIMENSION_NAMES.get(input_name, ())
    described = []
    for position, dimension in enumerate(shape.as_list()):
        if dimension is not None:
            described.append(str(dimension))
        elif position < len(dimension_names):
            described.append(dimension_names[position])
        else:
            described.append("?")
    return f"shape [{', '.join(described)}]"


def describe_expected_input(input_name: str, spec: tf.TensorSpec) -> str:
    """Describes what a signature expects for one input, for error messages.

    Args:
        input_name: The input's key in the signature.
        spec: The input's TensorSpec.

    Returns:
        E.g. "expected input 'waveform': float32 tensor of shape [num_samples]".
    """
    shape_text = _describe_shape(input_name, spec.shape)
    return f"expected input '{input_name}': {spec.dtype.name} tensor of {shape_text}"


def _dtype_name(dtype_enum: int) -> str:
    try:
        return tf.dtypes.as_dtype(dtype_enum).name
    except TypeError:
        return f"dtype enum {dtype_enum}"


@dataclasses.dataclass(frozen=True)
class InputLimits:
    """How large a request's inputs may be.

    Attributes:
        max_audio_samples: Most samples the ``waveform`` input may declare.
        max_message_bytes: Largest request; no input may declare more elements than it could carry.
    """

    max_audio_samples: int
    max_message_bytes: int

    @classmethod
    def for_audio_seconds(cls, max_audio_seconds: float, max_message_bytes: int) -> InputLimits:
        """Limits for audio of at most ``max_audio_seconds`` at 16 kHz."""
        return cls(math.floor(max_audio_seconds * features.SAMPLE_RATE), max_message_bytes)

    def max_elements(self, input_name: str, dtype_enum: int) -> int:
        """Most elements the input may declare."""
        honest_elements = self.max_message_bytes // _MIN_BYTES_PER_ELEMENT.get(dtype_enum, 1)
        if input_name == features.WAVEFORM_INPUT_KEY:
            return min(self.max_audio_samples, honest_elements)
        return honest_elements

    def describe(self, input_name: str, dtype_enum: int) -> str:
        """Says what bounds the input, for error messages."""
        max_elements = self.max_elements(input_name, dtype_enum)
        if input_name == features.WAVEFORM_INPUT_KEY and max_elements == self.max_audio_samples:
            seconds = self.max_audio_samples / features.SAMPLE_RATE
            return f"at most {max_elements} ({seconds:g} s at {features.SAMPLE_RATE} Hz, --max-audio-seconds)"
        return f"at most {max_elements} (what a {self.max_message_bytes}-byte message can carry)"


DEFAULT_INPUT_LIMITS = InputLimits.for_audio_seconds(DEFAULT_MAX_AUDIO_SECONDS, DEFAULT_MAX_MESSAGE_BYTES)


def check_inputs(
    tensor_protos: Mapping[str, tensor_pb2.TensorProto],
    input_specs: Mapping[str, tf.TensorSpec],
    limits: InputLimits = DEFAULT_INPUT_LIMITS,
) -> None:
    """Checks a request's input tensors against a signature and the limits, decoding nothing.

    Only the names, dtypes and declared shapes are read, so a tensor that
    declares far more elements than it carries costs nothing.

    Args:
        tensor_protos: The request's inputs.
        input_specs: The signature's inputs.
        limits: How many elements an input may declare.

    Raises:
        ServingError: INVALID_ARGUMENT if the names, a dtype or a shape do not
            match the signature, a dimension is negative, or an input declares
            more elements than the limits allow.
    """
    expected = "; ".join(describe_expected_input(name, spec) for name, spec in sorted(input_specs.items()))
    sent_names = set(tensor_protos.keys())
    if sent_names != set(input_specs):
        missing = sorted(set(input_specs) - sent_names)
        unexpected = sorted(sent_names - set(input_specs))
        raise ServingError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"inputs do not match the signature (missing: {missing}, unexpected: {unexpected}); {expected}",
        )
    for name, spec in input_specs.items():
        tensor_proto = tensor_protos[name]
        expected_input = describe_expected_input(name, spec)
        if tensor_proto.dtype != spec.dtype.as_datatype_enum:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"input '{name}' has dtype {_dtype_name(tensor_proto.dtype)}; {expected_input}",
            )
        if tensor_proto.tensor_shape.unknown_rank:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT, f"input '{name}' has no shape; {expected_input}"
            )
        dimensions = [dimension.size for dimension in tensor_proto.tensor_shape.dim]
        if any(size < 0 for size in dimensions):
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"input '{name}' has a negative dimension in shape {dimensions}; {expected_input}",
            )
        declared_elements = math.prod(dimensions)
        max_elements = limits.max_elements(name, tensor_proto.dtype)
        if declared_elements > max_elements:
            unit = "samples" if name == features.WAVEFORM_INPUT_KEY else "elements"
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"input '{name}' declares {declared_elements} {unit} (shape {dimensions}); this server "
                f"accepts {limits.describe(name, tensor_proto.dtype)}",
            )
        if not spec.shape.is_compatible_with(tf.TensorShape(dimensions)):
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"input '{name}' has shape {dimensions}; {expected_input}",
            )


def decode_inputs(
    tensor_protos: Mapping[str, tensor_pb2.TensorProto],
    input_specs: Mapping[str, tf.TensorSpec],
    limits: InputLimits = DEFAULT_INPUT_LIMITS,
) -> dict[str, tf.Tensor]:
    """Checks a request's input tensors against a signature and the limits, then decodes them.

    Args:
        tensor_protos: The request's inputs.
        input_specs: The signature's inputs.
        limits: How many elements an input may declare.

    Returns:
        One tensor per signature input.

    Raises:
        ServingError: INVALID_ARGUMENT if ``check_inputs`` refuses the inputs,
            a tensor cannot be decoded, or an input is empty.
    """
    check_inputs(tensor_protos, input_specs, limits)
    decoded = {}
    for name, spec in input_specs.items():
        tensor_proto = tensor_protos[name]
        expected_input = describe_expected_input(name, spec)
        sent_shape = [dimension.size for dimension in tensor_proto.tensor_shape.dim]
        try:
            array = tf.make_ndarray(tensor_proto)
        except (ValueError, TypeError) as error:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"input '{name}' cannot be decoded ({error}); {expected_input}",
            ) from None
        if array.shape != tuple(sent_shape):
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"input '{name}' holds {array.size} values, not {sent_shape}; {expected_input}",
            )
        if array.size == 0:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"input '{name}' is empty; {expected_input}")
        decoded[name] = tf.constant(array, dtype=spec.dtype)
    return decoded
