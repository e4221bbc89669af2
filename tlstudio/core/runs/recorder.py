"""The run record as a callback on the training loop: the engine computes, this writes.

After each completed epoch, in this order: the whole training state (``state.safetensors``),
the best weights when the epoch improved, then the epoch's line in ``metrics.jsonl``. A kill
between any two of these is repaired by :meth:`RunRecorder.repair` on resume, from the
state: the metrics log is rewritten from the state's history, and when the best epoch is
the state's own epoch its weights are the state's model.
"""

from __future__ import annotations

from ..engine.callbacks import Callback, EpochResult
from ..engine.loop import TrainingSession, model_weights
from .record import RunRecord


class History(Callback):
    """Every epoch's row, kept in the training state so the log can be rebuilt exactly."""

    name = "history"

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def on_epoch_end(self, session, result: EpochResult) -> None:
        self.rows = [r for r in self.rows if r["epoch"] < result.epoch] + [result.row()]

    def state_dict(self) -> dict:
        return {"rows": self.rows}

    def load_state_dict(self, state: dict) -> None:
        self.rows = list(state["rows"])


class RunRecorder(Callback):
    name = ""  # keeps no state of its own

    def __init__(self, record: RunRecord):
        self.record = record

    def on_epoch_end(self, session: TrainingSession, result: EpochResult) -> None:
        tensors, meta = session.state()
        self.record.save_state(tensors, meta)
        if result.improved:
            self.record.save_weights(model_weights(tensors), result.epoch)
        self.record.append_epoch(result.row())

    def repair(self, tensors: dict, meta: dict) -> None:
        """Make the log and the best weights agree with a state about to be resumed."""
        self.record.rewrite_epochs(meta["callbacks"]["history"]["rows"])
        best_epoch = meta["callbacks"]["best"]["epoch"]
        if self.record.weights_epoch() != best_epoch and best_epoch == meta["epoch"]:
            self.record.save_weights(model_weights(tensors), best_epoch)
