"""A user callback that reports every event it receives, to see which ones reach a job."""
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback


class EventsCallback(Callback):
    """Job and run events are printed (a job's printed lines are compared) and job events
    also go to `events.txt` in the job's output dir. Multirun events happen in the sweep's
    own process, after or before every job, so they go to `multirun_events.txt` in the
    sweep dir instead of being printed where they would read as the last job's lines."""

    def _print(self, name: str, in_job: bool = False) -> None:
        print(f"callback event: {name}", flush=True)
        if in_job:
            with open(Path(HydraConfig.get().runtime.output_dir) / "events.txt", "a") as f:
                f.write(f"{name}\n")

    def _sweep_file(self, config: DictConfig, name: str) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        with open(sweep_dir / "multirun_events.txt", "a") as f:
            f.write(f"{name}\n")

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._print("on_run_start")

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._print("on_run_end")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._sweep_file(config, "on_multirun_start")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._sweep_file(config, "on_multirun_end")

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._print("on_job_start", in_job=True)

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        self._print("on_job_end", in_job=True)
