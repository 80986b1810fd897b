"""The accent-recognition TFX pipeline: configuration, wiring, runners and command line."""
