"""Hydra's own launcher conformance suites, run against local mode."""

from hydra.test_utils.launcher_common_tests import (
    BatchedSweeperTestSuite,
    IntegrationTestSuite,
    LauncherTestSuite,
)
from pytest import mark

pytestmark = mark.slow  # Hydra's suites run local-mode sweeps, many in subprocesses

LOCAL = ["hydra.launcher.mode=local"]


@mark.parametrize("launcher_name, overrides", [("vertex_pipelines", LOCAL)])
class TestVertexPipelinesLauncher(LauncherTestSuite):
    pass


@mark.parametrize("launcher_name, overrides", [("vertex_pipelines", LOCAL + ["hydra.sweeper.max_batch_size=2"])])
class TestVertexPipelinesBatchedSweeper(BatchedSweeperTestSuite):
    pass


@mark.parametrize(
    "task_launcher_cfg, extra_flags",
    [({}, ["-m", "hydra/launcher=vertex_pipelines", *LOCAL])],
)
class TestVertexPipelinesIntegration(IntegrationTestSuite):
    pass
