"""YamnetModelGen: the TFX component that brings YAMNet into the pipeline as a Model artifact.

Both the embedding step and the Trainer (as ``base_model``, so that the served
model contains YAMNet) read the same artifact, so every step of one run uses
the same weights, and the artifact's lineage in ML Metadata says which.
"""

import logging

from tfx import v1 as tfx
from tfx.types import standard_artifacts
from tfx.utils import io_utils, path_utils

from components.yamnet import export, handle
from components.yamnet import weights as yamnet_weights

logger = logging.getLogger(__name__)


def yamnet_saved_model_dir(model_uri: str) -> str:
    """Returns the SavedModel directory inside a YamnetModelGen Model artifact.

    It is the path the Trainer gives ``run_fn`` as ``fn_args.base_model``.

    Args:
        model_uri: URI of the Model artifact.
    """
    return path_utils.serving_model_path(model_uri)


@tfx.dsl.components.component
def YamnetModelGen(  # noqa: N802 - TFX components are named like classes.
    model: tfx.dsl.components.OutputArtifact[standard_artifacts.Model],
    yamnet_handle: tfx.dsl.components.Parameter[str],
) -> None:
    """Resolves the YAMNet handle and copies the SavedModel into the artifact.

    Args:
        model: Output: the YAMNet SavedModel under ``Format-Serving``.
        yamnet_handle: A TF Hub or Kaggle URL, a local SavedModel directory, or
            ``offline`` (untrained, calibrated weights for plumbing only).
    """
    source_dir = str(handle.resolve_yamnet_handle(yamnet_handle))
    destination_dir = yamnet_saved_model_dir(model.uri)
    logger.info("Copying YAMNet from %s (handle %r) to %s", source_dir, yamnet_handle, destination_dir)
    io_utils.copy_dir(source_dir, destination_dir)
    weights_info = export.describe_weights(destination_dir)
    model.set_string_custom_property("yamnet_handle", yamnet_handle)
    model.set_string_custom_property("weights_source", weights_info.source)
    model.set_int_custom_property("pretrained", int(weights_info.pretrained))
    if not weights_info.pretrained:
        yamnet_weights.warn_offline_weights(f"{weights_info.describe()}, handle {yamnet_handle!r}")
