"""Validation and test hooks shared by stages that score each split the same way."""

from __future__ import annotations


class SplitEvalHooks:
    """Route Lightning's validation/test hooks to `_eval_step(prefix, batch)` and
    `_eval_epoch_end(prefix)`, with prefix "val" or "test"."""

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step("val", batch)

    def on_validation_epoch_end(self) -> None:
        self._eval_epoch_end("val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step("test", batch)

    def on_test_epoch_end(self) -> None:
        self._eval_epoch_end("test")
