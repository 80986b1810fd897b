"""The curated schema of the per-patch examples, shipped with the package."""

from pathlib import Path

# Path of the schema that ImportSchemaGen brings into the pipeline.
SCHEMA_PATH = Path(__file__).resolve().parent / "schema.pbtxt"
