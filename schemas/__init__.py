"""The curated schema of the per-patch examples, shipped with the package."""

import hashlib
from pathlib import Path

# Path of the schema that CuratedSchemaGen brings into the pipeline, inside the installed package.
SCHEMA_PATH = Path(__file__).resolve().parent / "schema.pbtxt"


def schema_fingerprint(schema_path: Path = SCHEMA_PATH) -> str:
    """The SHA-256 of a schema file's bytes, in hex."""
    return hashlib.sha256(schema_path.read_bytes()).hexdigest()
