"""The accent classifier: features, model, run_fn and serving signatures."""
