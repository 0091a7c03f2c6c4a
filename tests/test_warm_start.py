"""Local mode's fork server starts when Hydra sets the launcher up, so that its imports run
while Hydra composes and checks every job; a launcher that never launches closes it."""

import gc
import os

import pytest
from omegaconf import OmegaConf

from hydra_plugins.vertex_pipelines_launcher._local import warm_start
from hydra_plugins.vertex_pipelines_launcher.launcher import VertexPipelinesLauncher


def _config(tmp_path, **launcher):
    return OmegaConf.create({"hydra": {"launcher": launcher, "runtime": {"cwd": str(tmp_path)}}})


@pytest.mark.parametrize(
    "settings",
    [{"mode": "submit"}, {"mode": "compile"}, {"mode": "local", "fresh_interpreters": True}, {"mode": "locl"}],
)
def test_no_server_but_for_forked_local_trials(tmp_path, settings):
    assert warm_start(_config(tmp_path, **{"fresh_interpreters": False, **settings})) is None


def test_a_launcher_that_never_launches_closes_its_server(tmp_path):
    launcher = VertexPipelinesLauncher()
    launcher.setup(
        hydra_context=None, task_function=lambda cfg: None, config=_config(tmp_path, mode="local", fresh_interpreters=False)
    )
    (warm,) = launcher.warm
    assert (warm.cwd, warm.env) == (str(tmp_path), dict(os.environ))
    proc = warm.server.helper.proc
    assert proc.poll() is None  # importing Hydra for the trials meanwhile
    del launcher, warm
    gc.collect()
    assert proc.wait(timeout=15) is not None
