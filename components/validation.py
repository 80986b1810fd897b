"""ValidationGate: stops the run before training when ExampleValidator found anomalies.

ExampleValidator records anomalies but lets the pipeline go on. The Trainer
runs after this gate, so examples that break the schema never reach training,
and the run stops with a message that says what is wrong.
"""

import os

import tensorflow as tf
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx import v1 as tfx
from tfx.types import artifact_utils, standard_artifacts

from components.errors import AccentPipelineError

# File ExampleValidator writes for each split.
ANOMALIES_FILE = "SchemaDiff.pb"


class SchemaAnomaliesError(AccentPipelineError, RuntimeError):
    """Raised when the examples do not match the schema."""


def describe_anomalies(anomalies_uri: str, split_names: list[str]) -> list[str]:
    """Lists the anomalies ExampleValidator found, one line per feature and split.

    Args:
        anomalies_uri: URI of the ExampleAnomalies artifact.
        split_names: The splits it covers.

    Returns:
        Lines like ``split 'train', feature 'embedding': <description>``; empty if none.
    """
    lines = []
    for split_name in split_names:
        path = os.path.join(anomalies_uri, f"Split-{split_name}", ANOMALIES_FILE)
        if not tf.io.gfile.exists(path):
            continue
        anomalies = anomalies_pb2.Anomalies()
        with tf.io.gfile.GFile(path, "rb") as anomalies_file:
            anomalies.ParseFromString(anomalies_file.read())
        for feature_name, info in sorted(anomalies.anomaly_info.items()):
            description = info.description or info.short_description
            lines.append(f"split {split_name!r}, feature {feature_name!r}: {description}")
        if anomalies.HasField("dataset_anomaly_info"):
            info = anomalies.dataset_anomaly_info
            lines.append(f"split {split_name!r}, dataset: {info.description or info.short_description}")
    return lines


@tfx.dsl.components.component
def ValidationGate(  # noqa: N802 - TFX components are named like classes.
    anomalies: tfx.dsl.components.InputArtifact[standard_artifacts.ExampleAnomalies],
) -> None:
    """Raises if ExampleValidator found any anomaly in any split.

    Args:
        anomalies: The ExampleAnomalies artifact of ExampleValidator.

    Raises:
        SchemaAnomaliesError: Naming every anomaly, if there is any.
    """
    split_names = artifact_utils.decode_split_names(anomalies.split_names)
    problems = describe_anomalies(anomalies.uri, split_names)
    if problems:
        raise SchemaAnomaliesError(
            "The examples do not match schemas/schema.pbtxt, so the run stops before training:\n  "
            + "\n  ".join(problems)
            + "\nFix the data or, if the change is intended, update the schema (see schemas/README.md)."
        )
