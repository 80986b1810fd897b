"""CuratedSchemaGen: brings the schema shipped with the package into the pipeline.

TFX's ImportSchemaGen takes the schema's path as a parameter, which makes the
compiled pipeline name a path of the machine that compiled it. This step reads
the schema from the installed package instead, wherever it runs: a local run
or a step's container. The compiled pipeline carries the schema's fingerprint,
so an edited schema is a new cache key, and a step whose image holds another
schema than the one compiled against stops with a message that says so.
"""

import logging
import os

from tfx import v1 as tfx
from tfx.components.schema_gen import executor as schema_gen_executor
from tfx.types import standard_artifacts
from tfx.utils import io_utils

import schemas
from components.errors import AccentPipelineError

logger = logging.getLogger(__name__)


class SchemaMismatchError(AccentPipelineError, RuntimeError):
    """The installed package's schema is not the one the pipeline was built with."""


@tfx.dsl.components.component
def CuratedSchemaGen(  # noqa: N802 - TFX components are named like classes.
    schema: tfx.dsl.components.OutputArtifact[standard_artifacts.Schema],
    schema_fingerprint: tfx.dsl.components.Parameter[str],
) -> None:
    """Copies the package's ``schemas/schema.pbtxt`` into the Schema artifact.

    Args:
        schema: Output: ``schema.pbtxt``, as SchemaGen and ImportSchemaGen write it.
        schema_fingerprint: SHA-256 of the schema the pipeline was built with.

    Raises:
        SchemaMismatchError: If the installed schema has another fingerprint.
    """
    installed_fingerprint = schemas.schema_fingerprint()
    if installed_fingerprint != schema_fingerprint:
        raise SchemaMismatchError(
            f"The schema installed here ({schemas.SCHEMA_PATH}, sha256 {installed_fingerprint[:12]}) is not "
            f"the one this pipeline was built with (sha256 {schema_fingerprint[:12]}): rebuild the image "
            "from the commit that compiled the pipeline, or compile again"
        )
    destination = os.path.join(schema.uri, schema_gen_executor.DEFAULT_FILE_NAME)
    io_utils.copy_file(str(schemas.SCHEMA_PATH), destination, overwrite=True)
    logger.info(
        "Schema %s (sha256 %s) copied to %s", schemas.SCHEMA_PATH, installed_fingerprint[:12], destination
    )
