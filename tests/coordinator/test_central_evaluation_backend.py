"""The coordinator's central evaluation encodes with the run's backend and records it."""

from __future__ import annotations

from coordinator.central_evaluation import CentralEvaluator


def test_the_evaluation_encoder_is_the_run_configs_backend() -> None:
    # Execute: no dataset, so nothing is encoded (the encoder loads lazily)
    evaluator = CentralEvaluator(
        data_dir=None, dataset="none", kind="residual_linear", rank=0, encoder_backend="onnx"
    )
    torch = CentralEvaluator(
        data_dir=None, dataset="none", kind="residual_linear", rank=0, encoder_backend="torch"
    )
    # Assert: one model, two spaces (the manifest records the space)
    assert evaluator.encoder.backend == "onnx"
    assert evaluator.encoder.fingerprint == torch.encoder.fingerprint
    assert evaluator.encoder.space != torch.encoder.space
