"""The Launcher Hydra instantiates; the work happens in `_core`."""

import weakref
from typing import TYPE_CHECKING, Any, List, Optional, Sequence

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
        # Started at setup and handed to the first launch; closed with this launcher if no
        # launch comes (the sweep failed its checks, say), so that no fork server lingers.
        self.warm: List["WarmStart"] = []
        weakref.finalize(self, _close_unused, self.warm)

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
        if not self.warm:
            warm = _core.prepare(config)
            self.warm.extend([warm] if warm is not None else [])

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from . import _core

        assert self.config is not None and self.hydra_context is not None and self.task_function is not None
        warm = self.warm.pop() if self.warm else None
        return _core.launch(
            config=self.config,
            hydra_context=self.hydra_context,
            task_function=self.task_function,
            job_overrides=job_overrides,
            initial_job_idx=initial_job_idx,
            warm=warm,
        )


def _close_unused(warm: List["WarmStart"]) -> None:
    for started in warm:
        started.close_unless_taken()
