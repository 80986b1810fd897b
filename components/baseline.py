"""LatestServedModel: the Evaluator's baseline is the model that serving holds now.

The Evaluator gates a new model on "no regression against the last blessed
model". TFX's ``LatestBlessedModelStrategy`` resolver finds that model in ML
Metadata, but a resolver is no container: the open-source Kubeflow Pipelines
backend runs container and importer executors only. This step finds the same
model where it is served: the highest complete version under the serving base
path, which only ever receives blessed models. A version is
``components.serving.versions``'s rule and complete is
``pusher.incomplete_reason``'s: an interrupted copy, a digit name that is no
version (a number beyond int64) and a push's temporary directory are reported
and passed over, never taken for the served model. It copies that version into its
output Model artifact, so the Evaluator reads the baseline like any input, and
the artifact's lineage records which served version it was.

On a first run there is no served version: the artifact is empty and marked
absent, and ``components.evaluator.Executor`` evaluates without a baseline.
The step must never come from the cache (``pipeline.UNCACHED_COMPONENT_IDS``):
the served versions change between runs while its parameters do not.
"""

import logging

from tfx import types
from tfx import v1 as tfx
from tfx.dsl.io import fileio
from tfx.types import standard_artifacts
from tfx.utils import io_utils, path_utils

from components import pusher
from components.serving import versions

logger = logging.getLogger(__name__)

# Custom properties of the baseline Model artifact.
PRESENT_PROPERTY = "baseline_present"
SERVED_VERSION_PROPERTY = "served_version"
SERVED_PATH_PROPERTY = "served_path"


def baseline_is_present(model: types.Artifact) -> bool:
    """Whether a LatestServedModel artifact holds a model (it does not on a first run).

    A Model artifact that no LatestServedModel wrote (no such property) holds a model.

    Args:
        model: A Model artifact.
    """
    if not model.has_custom_property(PRESENT_PROPERTY):
        return True
    # On Kubeflow the property arrives as a JSON number (0.0), which get_custom_property takes for None.
    return model.get_int_custom_property(PRESENT_PROPERTY) != 0


@tfx.dsl.components.component
def LatestServedModel(  # noqa: N802 - TFX components are named like classes.
    model: tfx.dsl.components.OutputArtifact[standard_artifacts.Model],
    serving_base_path: tfx.dsl.components.Parameter[str],
) -> None:
    """Copies the latest complete served version into the Model artifact, if there is one.

    Args:
        model: Output: the served SavedModel under ``Format-Serving``, or nothing
            (custom property ``baseline_present`` 0) when no version is served.
        serving_base_path: TF Serving's model base path, where the Pusher writes.
    """
    version_dir = pusher.latest_complete_version_dir(serving_base_path)
    if version_dir is None:
        logger.info(
            "No model is served under %s yet: the Evaluator runs without a baseline", serving_base_path
        )
        model.set_int_custom_property(PRESENT_PROPERTY, 0)
        return
    destination_dir = path_utils.serving_model_path(model.uri)
    logger.info("Baseline: served version %s, copied to %s", version_dir, destination_dir)
    fileio.makedirs(destination_dir)
    io_utils.copy_dir(version_dir, destination_dir)
    model.set_int_custom_property(PRESENT_PROPERTY, 1)
    model.set_int_custom_property(SERVED_VERSION_PROPERTY, versions.version_number(version_dir))
    model.set_string_custom_property(SERVED_PATH_PROPERTY, version_dir)
