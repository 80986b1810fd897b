"""The pipeline's components and the modules they are built from."""
