"""An Evaluator that takes an absent baseline as no baseline.

The baseline comes from ``LatestServedModel``, whose Model artifact is empty
on a first run. TFX's Evaluator would try to load it; this executor drops it
instead, so the run is evaluated without a baseline: TFMA then ignores the
change thresholds and gates on the absolute ones alone, as it does when a
resolver finds no blessed model.
"""

from __future__ import annotations

from typing import Any

from absl import logging
from tfx import types
from tfx.components.evaluator import component as evaluator_component
from tfx.components.evaluator import executor as evaluator_executor
from tfx.dsl.components.base import executor_spec
from tfx.types import standard_component_specs

from components import baseline


class Executor(evaluator_executor.Executor):
    """TFX's Evaluator executor, except that an absent baseline model is dropped."""

    def Do(  # noqa: N802 - the TFX executor interface.
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        """Evaluates the model against the baseline if the baseline holds a model."""
        baseline_models = input_dict.get(standard_component_specs.BASELINE_MODEL_KEY, [])
        present = [model for model in baseline_models if baseline.baseline_is_present(model)]
        if len(present) < len(baseline_models):
            logging.info("No model is served yet: evaluating without a baseline.")
        input_dict = {**input_dict, standard_component_specs.BASELINE_MODEL_KEY: present}
        super().Do(input_dict, output_dict, exec_properties)


class Evaluator(evaluator_component.Evaluator):
    """TFX's Evaluator component, run by the executor above."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)
