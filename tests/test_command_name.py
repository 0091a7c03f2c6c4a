"""The hints name the command as this terminal can run it."""

import sys
from pathlib import Path

from hydra_vertex_pipelines.pipeline_builder.command_name import COMMAND, command_name


def test_the_bare_name_only_when_path_finds_this_installation(monkeypatch, tmp_path):
    installed = Path(sys.executable).with_name(COMMAND)
    assert installed.exists()  # the project is installed in the test environment
    monkeypatch.setenv("PATH", str(installed.parent))
    assert command_name() == COMMAND
    monkeypatch.setenv("PATH", str(tmp_path))  # a terminal where the environment is not activated
    monkeypatch.chdir(tmp_path)
    assert command_name() == str(installed)
    monkeypatch.chdir(installed.parent.parent)
    assert command_name() == str(Path(installed.parent.name) / COMMAND)


def test_without_the_script_python_dash_m(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python3"))
    assert command_name() == f"{tmp_path / 'python3'} -m hydra_vertex_pipelines.pipeline_builder"
