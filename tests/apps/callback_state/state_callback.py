"""A callback that keeps state from `on_multirun_start`, as resource monitors do, and
writes what it saw into each job's folder."""

import json
import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


class SweepState(Callback):
    def __init__(self) -> None:
        self.built_in = os.getpid()

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.multirun_started_in = os.getpid()

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        seen = {
            "built_in": self.built_in,
            "multirun_started_in": getattr(self, "multirun_started_in", None),
            "job_ended_in": os.getpid(),
        }
        Path(config.hydra.runtime.output_dir, "callback.json").write_text(json.dumps(seen))
