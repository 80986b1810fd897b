"""The accent-recognition pipeline: wiring only.

Data flows from top to bottom: corpus index -> YAMNet -> per-patch embeddings
-> statistics, schema and validation -> (with settings.tune, a hyperparameter
search, the Tuner) -> training -> evaluation against the
model served now -> a model card for every evaluated model -> push, with its
card, only when blessed.

Every step is a container step, so the same graph runs under LocalDagRunner,
on a self-hosted Kubeflow Pipelines and on Vertex AI Pipelines.
"""

from __future__ import annotations

import json

from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx

import schemas
from components import evaluation, evaluator, features, pusher
from components.baseline import LatestServedModel
from components.corpus.component import CorpusIndexGen
from components.embedding.component import EmbeddingGen
from components.model_card.component import ModelCardGenerator
from components.schema_gen import CuratedSchemaGen
from components.validation import ValidationGate
from components.yamnet.component import YamnetModelGen
from pipeline import configs

# The function the Trainer calls, importable wherever the package is installed.
TRAINER_RUN_FN = "components.trainer.model.run_fn"

# The function the Tuner calls (with settings.tune), importable wherever the package is installed.
TUNER_FN = "components.tuner.search.tuner_fn"

# The id of each step: its node name in ML Metadata, its task name in the Kubeflow spec.
CORPUS_INDEX_GEN_ID = "CorpusIndexGen"
YAMNET_MODEL_GEN_ID = "YamnetModelGen"
EMBEDDING_GEN_ID = "EmbeddingGen"
STATISTICS_GEN_ID = "StatisticsGen"
CURATED_SCHEMA_GEN_ID = "CuratedSchemaGen"
EXAMPLE_VALIDATOR_ID = "ExampleValidator"
VALIDATION_GATE_ID = "ValidationGate"
TUNER_ID = "Tuner"
TRAINER_ID = "Trainer"
LATEST_SERVED_MODEL_ID = "LatestServedModel"
EVALUATOR_ID = "Evaluator"
MODEL_CARD_GENERATOR_ID = "ModelCardGenerator"
PUSHER_ID = "Pusher"

# The id of every step that a run may have, in the order create_pipeline lists them.
COMPONENT_IDS: tuple[str, ...] = (
    CORPUS_INDEX_GEN_ID,
    YAMNET_MODEL_GEN_ID,
    EMBEDDING_GEN_ID,
    STATISTICS_GEN_ID,
    CURATED_SCHEMA_GEN_ID,
    EXAMPLE_VALIDATOR_ID,
    VALIDATION_GATE_ID,
    TUNER_ID,
    TRAINER_ID,
    LATEST_SERVED_MODEL_ID,
    EVALUATOR_ID,
    MODEL_CARD_GENERATOR_ID,
    PUSHER_ID,
)

# Steps that only a setting adds: the Tuner (settings.tune). Every other step is in every run.
OPTIONAL_COMPONENT_IDS: frozenset[str] = frozenset({TUNER_ID})

# Steps that every orchestrator runs afresh: what they read changes between runs, their parameters do not.
UNCACHED_COMPONENT_IDS: frozenset[str] = frozenset({LATEST_SERVED_MODEL_ID})


def create_pipeline(
    pipeline_name: str,
    pipeline_root: str,
    corpus_dir: str,
    corpus_fingerprint: str,
    serving_model_dir: str,
    settings: configs.PipelineSettings,
    quarantine_copy_path: str = "",
    metadata_connection_config: metadata_store_pb2.ConnectionConfig | None = None,
    enable_cache: bool = True,
) -> tfx.dsl.Pipeline:
    """Builds the TFX pipeline.

    Args:
        pipeline_name: Name of the pipeline in ML Metadata.
        pipeline_root: Where artifacts are written.
        corpus_dir: The OpenSLR-83 style corpus.
        corpus_fingerprint: Hash of the corpus files; a changed corpus is indexed again.
        serving_model_dir: Base directory of the pushed model (TF Serving layout).
        settings: Every other setting of the run.
        quarantine_copy_path: Where CorpusIndexGen and EmbeddingGen also copy the quarantine report
            when a run stops on it (EmbeddingGen always), or "".
        metadata_connection_config: ML Metadata connection; None for the orchestrator's own.
        enable_cache: Whether to reuse the outputs of unchanged steps.

    Returns:
        The pipeline.
    """
    class_names_json = json.dumps(list(settings.class_names))

    corpus_index = CorpusIndexGen(
        corpus_dir=corpus_dir,
        corpus_fingerprint=corpus_fingerprint,
        accent_codes_json=json.dumps(settings.accent_codes, sort_keys=True),
        class_names_json=class_names_json,
        split_strategy=settings.split_strategy,
        eval_fraction=settings.eval_fraction,
        split_seed=settings.split_seed,
        max_bad_fraction=settings.max_bad_fraction,
        quarantine_copy_path=quarantine_copy_path,
    ).with_id(CORPUS_INDEX_GEN_ID)

    yamnet = YamnetModelGen(yamnet_handle=settings.yamnet_handle).with_id(YAMNET_MODEL_GEN_ID)

    embeddings = EmbeddingGen(
        clip_index=corpus_index.outputs["clip_index"],
        yamnet_model=yamnet.outputs["model"],
        class_names_json=class_names_json,
        non_speech_rule=settings.non_speech_rule,
        energy_threshold_dbfs=settings.energy_threshold_dbfs,
        batch_patches=settings.embedding_batch_patches,
        max_bad_fraction=settings.max_bad_fraction,
        quarantine_copy_path=quarantine_copy_path,
        max_clip_seconds=settings.max_clip_seconds,
    ).with_id(EMBEDDING_GEN_ID)

    statistics = tfx.components.StatisticsGen(examples=embeddings.outputs["examples"]).with_id(
        STATISTICS_GEN_ID
    )

    schema = CuratedSchemaGen(schema_fingerprint=schemas.schema_fingerprint()).with_id(CURATED_SCHEMA_GEN_ID)

    example_validator = tfx.components.ExampleValidator(
        statistics=statistics.outputs["statistics"], schema=schema.outputs["schema"]
    ).with_id(EXAMPLE_VALIDATOR_ID)

    validation_gate = ValidationGate(anomalies=example_validator.outputs["anomalies"]).with_id(
        VALIDATION_GATE_ID
    )

    # The Tuner validates on a speaker-disjoint part of the train split; of the eval split it reads
    # the speaker ids alone, to keep those speakers out of its validation (components/tuner/).
    tuner = None
    if settings.tune:
        tuner = tfx.components.Tuner(
            tuner_fn=TUNER_FN,
            examples=embeddings.outputs["examples"],
            schema=schema.outputs["schema"],
            train_args=tfx.proto.TrainArgs(splits=[features.TRAIN_SPLIT]),
            eval_args=tfx.proto.EvalArgs(splits=[features.EVAL_SPLIT]),
            custom_config=settings.tuner_config().to_custom_config(),
        ).with_id(TUNER_ID)
        tuner.add_upstream_node(validation_gate)

    trainer = tfx.components.Trainer(
        run_fn=TRAINER_RUN_FN,
        examples=embeddings.outputs["examples"],
        schema=schema.outputs["schema"],
        base_model=yamnet.outputs["model"],
        hyperparameters=tuner.outputs["best_hyperparameters"] if tuner else None,
        train_args=tfx.proto.TrainArgs(splits=[features.TRAIN_SPLIT]),
        eval_args=tfx.proto.EvalArgs(splits=[features.EVAL_SPLIT]),
        custom_config=settings.trainer_config().to_custom_config(),
    ).with_id(TRAINER_ID)
    trainer.add_upstream_node(validation_gate)

    served_model = LatestServedModel(serving_base_path=serving_model_dir).with_id(LATEST_SERVED_MODEL_ID)

    model_evaluator = evaluator.Evaluator(
        examples=embeddings.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=served_model.outputs["model"],
        example_splits=[features.EVAL_SPLIT],
        eval_config=evaluation.build_eval_config(
            class_names=settings.class_names,
            min_macro_auc=settings.min_auc,
            max_auc_regression=settings.max_auc_regression,
        ),
    ).with_id(EVALUATOR_ID)

    # Every evaluated model gets a card, blessed or not; a blessed one carries it into its pushed version.
    model_card = ModelCardGenerator(
        model_run=trainer.outputs["model_run"],
        model=trainer.outputs["model"],
        yamnet_model=yamnet.outputs["model"],
        evaluation=model_evaluator.outputs["evaluation"],
        blessing=model_evaluator.outputs["blessing"],
        clip_index=corpus_index.outputs["clip_index"],
        quarantine_report=embeddings.outputs["quarantine_report"],
        statistics=statistics.outputs["statistics"],
        schema=schema.outputs["schema"],
        model_name=configs.SERVING_MODEL_NAME,
        class_names_json=class_names_json,
        split_strategy=settings.split_strategy,
        tuner_results=tuner.outputs["tuner_results"] if tuner else None,
        best_hyperparameters=tuner.outputs["best_hyperparameters"] if tuner else None,
    ).with_id(MODEL_CARD_GENERATOR_ID)

    with tfx.dsl.Cond(model_evaluator.outputs["blessing"].future()[0].custom_property("blessed") == 1):
        model_pusher = pusher.Pusher(
            model=trainer.outputs["model"],
            model_blessing=model_evaluator.outputs["blessing"],
            model_card=model_card.outputs["model_card"],
            push_destination=tfx.proto.PushDestination(
                filesystem=tfx.proto.PushDestination.Filesystem(base_directory=serving_model_dir)
            ),
        ).with_id(PUSHER_ID)

    return tfx.dsl.Pipeline(
        pipeline_name=pipeline_name,
        pipeline_root=pipeline_root,
        components=[
            corpus_index,
            yamnet,
            embeddings,
            statistics,
            schema,
            example_validator,
            validation_gate,
            *([tuner] if tuner else []),
            trainer,
            served_model,
            model_evaluator,
            model_card,
            model_pusher,
        ],
        enable_cache=enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=list(settings.beam_pipeline_args),
    )
