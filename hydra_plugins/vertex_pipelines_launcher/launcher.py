"""The Launcher Hydra instantiates; the work happens in `_core`."""

from typing import TYPE_CHECKING, Any, Optional, Sequence

from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

if TYPE_CHECKING:
    from ._local import WarmStart


class VertexPipelinesLauncher(Launcher):
    def __init__(self, **settings: Any) -> None:
        """Hydra passes the `hydra.launcher` settings; a launch reads them from the sweep's
        config instead, once, with the rest of what it needs."""
        self.config: Optional[DictConfig] = None
        self.task_function: Optional[TaskFunction] = None
        self.hydra_context: Optional[HydraContext] = None
        self.warm: Optional["WarmStart"] = None  # started at setup, handed to the first launch

    def setup(
        self,
        *,
        hydra_context: HydraContext,
        task_function: TaskFunction,
        config: DictConfig,
    ) -> None:
        from . import _core

        self.config = config
        self.task_function = task_function
        self.hydra_context = hydra_context
        if self.warm is None:
            self.warm = _core.prepare(config)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from . import _core

        assert self.config is not None and self.hydra_context is not None and self.task_function is not None
        warm, self.warm = self.warm, None
        return _core.launch(
            config=self.config,
            hydra_context=self.hydra_context,
            task_function=self.task_function,
            job_overrides=job_overrides,
            initial_job_idx=initial_job_idx,
            warm=warm,
        )
