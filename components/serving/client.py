"""Sends audio files to TF Serving over gRPC and prints the accents it predicts.

``predict_files`` backs ``accent-pipeline predict``. It works against the
production ``tensorflow_model_server`` and the project's local server alike:
both speak tensorflow-serving-api's ``PredictionService``. Each file is
decoded with ``components.audio`` (any supported format, mixed to mono,
resampled to 16 kHz) and sent as one row of the batched signature
``serving_batch`` (``batch_signature``) when the served model lists it, or as
the ``waveform`` input of ``serving_default`` otherwise. TF Serving running
with ``--enable_batching`` (as ``kubernetes/`` deploys it) batches every
signature, and only ``serving_batch`` can be batched: ``choose_signature``
asks the server's GetModelMetadata which signatures the model has, once per
``predict_files`` call; a ``signature_name`` forces one. Both signatures give
the same prediction.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2, prediction_service_pb2_grpc

from components import audio, features
from components.errors import AccentPipelineError
from components.serving import batch_signature
from components.serving.grpc_options import grpc_message_options

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 30.0

# The metadata field of GetModelMetadata that lists the served model's signatures.
SIGNATURE_DEF_METADATA_FIELD = "signature_def"


@dataclasses.dataclass(frozen=True)
class Prediction:
    """The served model's answer for one waveform.

    Attributes:
        accent: Name of the most probable class.
        class_probabilities: Class name to clip-level probability, in the model's class order.
        patch_probabilities: [num_patches, num_classes] probabilities of each 0.96 s patch.
        model_version: Version of the model that answered.
    """

    accent: str
    class_probabilities: dict[str, float]
    patch_probabilities: np.ndarray
    model_version: int


class PredictionError(AccentPipelineError):
    """A file that could not be scored; the message says why, for the user."""


def build_predict_request(
    waveform: np.ndarray, model_name: str, signature_name: str = features.SERVING_SIGNATURE
) -> predict_pb2.PredictRequest:
    """Builds the PredictRequest for one waveform.

    Args:
        waveform: 1-D 16 kHz mono samples.
        model_name: The name the model is served under.
        signature_name: The signature to run; ``serving_batch`` sends the waveform as its one row.

    Returns:
        A request with the waveform as a float32 ``waveform`` input, or for ``serving_batch``
        as ``waveforms`` ``[1, num_samples]`` with ``num_samples`` ``[1]``.

    Raises:
        ValueError: If the waveform is not 1-D or is empty.
    """
    samples = np.asarray(waveform, dtype=np.float32)
    if samples.ndim != 1:
        raise ValueError(f"waveform must be 1-D (mono samples), got shape {samples.shape}")
    if samples.size == 0:
        raise ValueError("waveform is empty")
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    if signature_name == batch_signature.BATCH_SIGNATURE:
        request.inputs[batch_signature.WAVEFORMS_INPUT_KEY].CopyFrom(
            tf.make_tensor_proto(samples[np.newaxis, :])
        )
        request.inputs[batch_signature.NUM_SAMPLES_INPUT_KEY].CopyFrom(
            tf.make_tensor_proto(np.array([samples.size], dtype=np.int32))
        )
    else:
        request.inputs[features.WAVEFORM_INPUT_KEY].CopyFrom(tf.make_tensor_proto(samples))
    return request


def parse_predict_response(
    response: predict_pb2.PredictResponse, class_names: Sequence[str] = features.DEFAULT_CLASS_NAMES
) -> Prediction:
    """Turns a PredictResponse of the accent model into a Prediction.

    A ``serving_batch`` response (it has ``num_patches``) is read as its first
    row, its patch probabilities cut to the clip's own patches.

    Args:
        response: The server's answer.
        class_names: Class names in the order of the ``class_probabilities`` vector.

    Returns:
        The prediction.

    Raises:
        ValueError: If an output is missing or does not match ``class_names``.
    """
    expected_outputs = (
        features.ACCENT_OUTPUT_KEY,
        features.CLASS_PROBABILITIES_OUTPUT_KEY,
        features.PATCH_PROBABILITIES_OUTPUT_KEY,
    )
    missing = [name for name in expected_outputs if name not in response.outputs]
    if missing:
        raise ValueError(f"the server's response lacks outputs {missing}; it has {sorted(response.outputs)}")
    class_probabilities = tf.make_ndarray(response.outputs[features.CLASS_PROBABILITIES_OUTPUT_KEY])
    accent = tf.make_ndarray(response.outputs[features.ACCENT_OUTPUT_KEY])
    patch_probabilities = tf.make_ndarray(response.outputs[features.PATCH_PROBABILITIES_OUTPUT_KEY])
    if batch_signature.NUM_PATCHES_OUTPUT_KEY in response.outputs:
        num_patches = tf.make_ndarray(response.outputs[batch_signature.NUM_PATCHES_OUTPUT_KEY])
        if num_patches.shape != (1,) or class_probabilities.ndim != 2 or patch_probabilities.ndim != 3:
            raise ValueError(
                f"the server returned a batched answer of {list(num_patches.shape)} rows; one was sent"
            )
        class_probabilities = class_probabilities[0]
        accent = accent[0, ...]
        patch_probabilities = patch_probabilities[0, : int(num_patches[0])]
    if class_probabilities.shape != (len(class_names),):
        raise ValueError(
            f"the server returned class probabilities of shape {list(class_probabilities.shape)}, "
            f"but the client knows {len(class_names)} classes: {list(class_names)}"
        )
    return Prediction(
        accent=accent.item().decode("utf-8") if accent.dtype == object else str(accent.item()),
        class_probabilities={
            name: float(probability)
            for name, probability in zip(class_names, class_probabilities, strict=True)
        },
        patch_probabilities=patch_probabilities,
        model_version=response.model_spec.version.value,
    )


def build_metadata_request(model_name: str) -> get_model_metadata_pb2.GetModelMetadataRequest:
    """Builds the GetModelMetadataRequest that asks for the model's signature defs.

    Args:
        model_name: The name the model is served under.

    Returns:
        A request for the ``signature_def`` metadata field of the latest version.
    """
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = model_name
    request.metadata_field.append(SIGNATURE_DEF_METADATA_FIELD)
    return request


def signature_defs_of(
    response: get_model_metadata_pb2.GetModelMetadataResponse,
) -> get_model_metadata_pb2.SignatureDefMap:
    """Returns the signature defs a GetModelMetadataResponse carries (none when it has no such field).

    Args:
        response: The server's answer to ``build_metadata_request``.

    Returns:
        The model's signature defs, by signature name.
    """
    signature_defs = get_model_metadata_pb2.SignatureDefMap()
    if SIGNATURE_DEF_METADATA_FIELD in response.metadata:
        response.metadata[SIGNATURE_DEF_METADATA_FIELD].Unpack(signature_defs)
    return signature_defs


def signature_for(signature_names: Iterable[str]) -> str:
    """Returns the signature the project's clients call on a model with these signatures.

    Args:
        signature_names: The served model's signature names.

    Returns:
        ``serving_batch`` when the model has it (TF Serving with batching on can run only
        that one), ``serving_default`` otherwise.
    """
    if batch_signature.BATCH_SIGNATURE in set(signature_names):
        return batch_signature.BATCH_SIGNATURE
    return features.SERVING_SIGNATURE


def choose_signature(
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
    model_name: str,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> str:
    """Asks the server which signatures the model has and returns the one to call.

    Args:
        stub: A PredictionService stub on an open channel.
        model_name: The name the model is served under.
        timeout: Deadline of the call, in seconds.

    Returns:
        ``serving_batch`` when the served model lists it, ``serving_default`` otherwise
        (also when the server does not implement GetModelMetadata).

    Raises:
        grpc.RpcError: If the metadata call fails otherwise (the server is down, serves
            no such model, or times out).
    """
    try:
        response = stub.GetModelMetadata(build_metadata_request(model_name), timeout=timeout)
    except grpc.RpcError as error:
        if isinstance(error, grpc.Call) and error.code() is grpc.StatusCode.UNIMPLEMENTED:
            return features.SERVING_SIGNATURE
        raise
    return signature_for(signature_defs_of(response).signature_def)


def predict_waveform(
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
    waveform: np.ndarray,
    model_name: str,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    class_names: Sequence[str] = features.DEFAULT_CLASS_NAMES,
    signature_name: str = features.SERVING_SIGNATURE,
) -> Prediction:
    """Asks TF Serving for the accent of one waveform.

    Args:
        stub: A PredictionService stub on an open channel.
        waveform: 1-D 16 kHz mono float samples.
        model_name: The name the model is served under.
        timeout: Deadline of the call, in seconds.
        class_names: Class names in the order of the ``class_probabilities`` vector.
        signature_name: ``serving_default``, or ``serving_batch`` for TF Serving with batching on.

    Returns:
        The prediction.

    Raises:
        grpc.RpcError: If the call fails (the server is down, rejects the request, or times out).
        ValueError: If the waveform is not 1-D or empty, or the response does not fit the contract.
    """
    request = build_predict_request(waveform, model_name, signature_name)
    response = stub.Predict(request, timeout=timeout)
    return parse_predict_response(response, class_names)


def _describe_rpc_error(error: grpc.RpcError, server: str, path: str, timeout: float) -> str:
    code = error.code() if isinstance(error, grpc.Call) else None
    details = error.details() if isinstance(error, grpc.Call) else str(error)
    if code is grpc.StatusCode.UNAVAILABLE:
        return f"cannot reach TF Serving at {server}: {details}"
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"TF Serving at {server} did not answer for {path} within {timeout:g} s"
    code_name = code.name if code is not None else "UNKNOWN"
    return f"TF Serving at {server} failed on {path}: {code_name}: {details}"


def predict_file(
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
    path: str,
    server: str,
    model_name: str,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    signature_name: str = features.SERVING_SIGNATURE,
) -> Prediction:
    """Reads, decodes and scores one audio file.

    Args:
        stub: A PredictionService stub on an open channel.
        path: The audio file.
        server: "HOST:PORT" of the server, for messages.
        model_name: The name the model is served under.
        timeout: Deadline of the call, in seconds.
        signature_name: ``serving_default``, or ``serving_batch`` for TF Serving with batching on.

    Returns:
        The prediction.

    Raises:
        PredictionError: With a message for the user if the file cannot be read
            or decoded (whatever the decoder raises, out of memory included), or
            the server does not answer.
    """
    try:
        encoded = Path(path).read_bytes()
    except OSError as error:
        raise PredictionError(f"cannot read {path}: {error.strerror or error}") from error
    except MemoryError as error:
        raise PredictionError(f"cannot read {path}: out of memory") from error
    try:
        waveform = audio.load_waveform(encoded, Path(path).name, features.SAMPLE_RATE)
    except audio.AudioDecodeError as error:
        raise PredictionError(f"cannot decode {path}: {error.reason}") from error
    except MemoryError as error:
        raise PredictionError(f"cannot decode {path}: out of memory") from error
    except Exception as error:  # Any other decoder failure is this file's, not the whole command's.
        raise PredictionError(f"cannot decode {path}: {type(error).__name__}: {error}") from error
    if waveform.size == 0:
        raise PredictionError(f"cannot score {path}: it holds no audio samples")
    try:
        return predict_waveform(stub, waveform, model_name, timeout, signature_name=signature_name)
    except grpc.RpcError as error:
        raise PredictionError(_describe_rpc_error(error, server, path, timeout)) from error
    except ValueError as error:
        raise PredictionError(f"unexpected answer from TF Serving at {server} for {path}: {error}") from error


def _choose_signature_for_file(
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
    server: str,
    model_name: str,
    path: str,
    timeout: float,
) -> str:
    """``choose_signature``, its failure reported as the file's ``PredictionError``."""
    try:
        signature_name = choose_signature(stub, model_name, timeout)
    except grpc.RpcError as error:
        raise PredictionError(_describe_rpc_error(error, server, path, timeout)) from error
    logger.info("Calling signature %s of model %s at %s", signature_name, model_name, server)
    return signature_name


def prediction_to_json(path: str, model_name: str, prediction: Prediction) -> dict[str, Any]:
    """Returns the JSON object ``--json`` prints for one file.

    Args:
        path: The audio file.
        model_name: The name the model is served under.
        prediction: The file's prediction.

    Returns:
        A JSON-serialisable dict.
    """
    return {
        "file": path,
        "accent": prediction.accent,
        "class_probabilities": prediction.class_probabilities,
        "patch_probabilities": prediction.patch_probabilities.astype(float).tolist(),
        "model_name": model_name,
        "model_version": prediction.model_version,
    }


def format_prediction(path: str, model_name: str, prediction: Prediction) -> str:
    """Returns the text printed for one file: the top accent and the class probabilities, highest first.

    Args:
        path: The audio file.
        model_name: The name the model is served under.
        prediction: The file's prediction.

    Returns:
        Several lines, ending with a newline.
    """
    num_patches = len(prediction.patch_probabilities)
    lines = [
        f"{path}: {prediction.accent} "
        f"(model {model_name} version {prediction.model_version}, {num_patches} patch"
        f"{'' if num_patches == 1 else 'es'})"
    ]
    name_width = max(len(name) for name in prediction.class_probabilities)
    ranked = sorted(prediction.class_probabilities.items(), key=lambda item: item[1], reverse=True)
    lines.extend(f"  {name:<{name_width}}  {probability:7.2%}" for name, probability in ranked)
    return "\n".join(lines) + "\n"


def predict_files(
    paths: Sequence[str],
    server: str,
    model_name: str,
    output_json: bool,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    stream: TextIO | None = None,
    signature_name: str | None = None,
) -> int:
    """Scores audio files with TF Serving and prints one result per file; backs ``accent-pipeline predict``.

    A file that cannot be read, decoded or scored is reported on stderr (and,
    with ``output_json``, as ``{"file": ..., "error": ...}``) and the next file
    is tried. Unless ``signature_name`` forces one, the signature is chosen
    once (``choose_signature``), before the first file is sent; if that
    metadata call fails, the file is reported with the error and the next
    file asks again.

    Args:
        paths: Audio files.
        server: "HOST:PORT" of TF Serving or the project's server.
        model_name: The name the model is served under.
        output_json: Print one JSON object per line and file instead of a table.
        timeout_seconds: Deadline of each call, in seconds.
        stream: Where results go; standard output when None.
        signature_name: ``serving_default`` or ``serving_batch`` to force one; None (the default)
            calls ``serving_batch`` when the served model lists it, ``serving_default`` otherwise.

    Returns:
        The number of files that could not be scored.

    Raises:
        ValueError: If ``timeout_seconds`` is not positive.
    """
    if timeout_seconds <= 0:
        raise ValueError(f"timeout_seconds must be positive, got {timeout_seconds}")
    output = sys.stdout if stream is None else stream
    num_failed = 0
    with grpc.insecure_channel(server, options=grpc_message_options()) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        chosen_signature = signature_name
        for path in paths:
            try:
                if chosen_signature is None:
                    chosen_signature = _choose_signature_for_file(
                        stub, server, model_name, path, timeout_seconds
                    )
                prediction = predict_file(
                    stub, path, server, model_name, timeout_seconds, signature_name=chosen_signature
                )
            except PredictionError as error:
                num_failed += 1
                print(f"error: {error}", file=sys.stderr, flush=True)
                if output_json:
                    output.write(json.dumps({"file": path, "error": str(error)}) + "\n")
                continue
            if output_json:
                output.write(json.dumps(prediction_to_json(path, model_name, prediction)) + "\n")
            else:
                output.write(format_prediction(path, model_name, prediction))
            output.flush()
    return num_failed
