"""The Tuner step's code: KerasTuner's search around the reference classifier, for TFX's Tuner.

* ``search.tuner_fn``: the function TFX's Tuner calls (``components.tuner.search.tuner_fn``).
* ``search_space``: the hyperparameters searched and the model each trial builds.
* ``tuning_split``: the speaker-disjoint tuning train and tuning validation parts of the train split.
* ``config.TunerConfig``: the search budget and settings, carried in the Tuner's ``custom_config``.
* ``trials``: the trials table and the best hyperparameters, read back from the Tuner's outputs.
"""
