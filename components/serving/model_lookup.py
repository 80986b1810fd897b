"""Model lookup of the local server: from a request's ModelSpec to what answers it, as TF Serving does.

Every RPC that names a model goes through ``read_model_spec``, the one check of
a ModelSpec: it must be there (else INVALID_ARGUMENT "Missing ModelSpec") and
must not name a version label (this server has none: INVALID_ARGUMENT).

``ModelLookup.resolve`` finds the loaded model for Predict and
GetModelMetadata; ``ModelLookup.version_statuses`` finds the version states for
GetModelStatus. An unknown model, or a version that is not served, is
NOT_FOUND, with TF Serving's wording ("Servable not found for request:
Specific(accent, 1)", "Could not find any versions of model dialect").
"""

from __future__ import annotations

import grpc
from google.protobuf import message as protobuf_message
from tensorflow_serving.apis import model_pb2

from components.serving.model_manager import LoadedModel, ModelManager, VersionStatus
from components.serving.rpc import RequestRecord, ServingError


def read_model_spec(request: protobuf_message.Message, record: RequestRecord) -> model_pb2.ModelSpec:
    """Returns a request's ModelSpec once it is checked, and notes it in the request log line.

    Args:
        request: A request with a ``model_spec`` field.
        record: The request's log record.

    Returns:
        The ModelSpec.

    Raises:
        ServingError: INVALID_ARGUMENT if the ModelSpec is missing or names a version label.
    """
    if not request.HasField("model_spec"):
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec")
    model_spec = request.model_spec
    record.note_model_spec(model_spec)
    if model_spec.HasField("version_label"):
        raise ServingError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"Unrecognized servable version label: {model_spec.version_label} "
            "(this server has no version labels; name a version number or none for the latest)",
        )
    return model_spec


def _servable_request_text(model_spec: model_pb2.ModelSpec) -> str:
    if model_spec.HasField("version"):
        return f"Specific({model_spec.name}, {model_spec.version.value})"
    return f"Latest({model_spec.name})"


class ModelLookup:
    """Finds what answers a request's ModelSpec among the versions a ModelManager holds."""

    def __init__(self, manager: ModelManager) -> None:
        """Creates the lookup.

        Args:
            manager: The manager that loads the model's versions.
        """
        self.manager = manager

    def resolve(self, request: protobuf_message.Message, record: RequestRecord) -> LoadedModel:
        """Returns the loaded model that answers a request.

        Args:
            request: A request with a ``model_spec`` field.
            record: The request's log record; the version that answers is noted in it.

        Returns:
            The served model, which must stay the one used for the whole request.

        Raises:
            ServingError: INVALID_ARGUMENT for a bad ModelSpec (``read_model_spec``);
                NOT_FOUND for another model, no loaded version yet, or a version
                other than the served one.
        """
        model_spec = read_model_spec(request, record)
        servable_request = _servable_request_text(model_spec)
        if model_spec.name != self.manager.model_name:
            raise ServingError(
                grpc.StatusCode.NOT_FOUND,
                f"Servable not found for request: {servable_request} (this server serves model "
                f"'{self.manager.model_name}')",
            )
        model = self.manager.current()
        if model is None:
            raise ServingError(
                grpc.StatusCode.NOT_FOUND,
                f"Servable not found for request: {servable_request} (no version of "
                f"'{self.manager.model_name}' has been loaded yet)",
            )
        if model_spec.HasField("version") and model_spec.version.value != model.version:
            raise ServingError(
                grpc.StatusCode.NOT_FOUND,
                f"Servable not found for request: {servable_request} (serving version {model.version} only)",
            )
        record.version = model.version
        return model

    def version_statuses(
        self, request: protobuf_message.Message, record: RequestRecord
    ) -> list[VersionStatus]:
        """Returns the states of the versions a request asks about, newest first.

        Args:
            request: A request with a ``model_spec`` field.
            record: The request's log record.

        Returns:
            Every version's state, or only the one ModelSpec names.

        Raises:
            ServingError: INVALID_ARGUMENT for a bad ModelSpec (``read_model_spec``);
                NOT_FOUND for another model, a model with no version yet, or an unknown version.
        """
        model_spec = read_model_spec(request, record)
        statuses = self.manager.version_statuses() if model_spec.name == self.manager.model_name else []
        if not statuses:
            raise ServingError(
                grpc.StatusCode.NOT_FOUND, f"Could not find any versions of model {model_spec.name}"
            )
        if model_spec.HasField("version"):
            statuses = [status for status in statuses if status.version == model_spec.version.value]
            if not statuses:
                raise ServingError(
                    grpc.StatusCode.NOT_FOUND,
                    f"Could not find version {model_spec.version.value} of model {model_spec.name}",
                )
        return statuses
