"""The model card of a pipeline run: typed inputs, figures, and HTML, Hugging Face and JSON renderings.

``generate.write_model_card(inputs, output_dir)`` is the entry point; ``inputs.read_model_card_inputs``
builds its inputs from artifact URIs. Importing this package imports nothing heavy.
"""
