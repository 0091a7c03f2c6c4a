from datetime import datetime, timezone

import pytest

from hydra_vertex_pipelines.pipeline_builder.errors import ConfigError
from hydra_vertex_pipelines.pipeline_builder.spec import names


@pytest.mark.parametrize(
    "app,expected",
    [
        ("train", "train"),
        ("my_train.py", "my-train-py"),
        ("Train__Model  v2", "train-model-v2"),
        ("2stage", "sweep-2stage"),
        ("___", "sweep"),
        ("a" * 100, "a" * 64),
    ],
)
def test_pipeline_name_from_app(app, expected):
    assert names.pipeline_name(app) == expected
    names.check_pipeline_name(names.pipeline_name(app), "f")


@pytest.mark.parametrize("bad", ["Train", "my_pipe", "9lives", "x" * 65, "ends-", ""])
def test_check_pipeline_name_rejects(bad):
    with pytest.raises(ConfigError, match="lowercase letters, digits and dashes"):
        names.check_pipeline_name(bad, "hydra.launcher.pipeline_name")


def test_run_id_is_a_valid_job_id_and_label_value():
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    rid = names.run_id("x" * 64, "/sweep|0", now)
    assert rid.startswith("x" * 40 + "-20260102-030405-")
    assert len(rid) <= 63
    assert names.check_labels({"run": rid}, "l") == {"run": rid}
    assert names.run_id("x", "/sweep|0", now) != names.run_id("x", "/sweep|4", now)
    assert names.run_id("x", "/sweep|0", now) == names.run_id("x", "/sweep|0", now)


def test_display_name_is_cut_to_128_characters():
    assert names.display_name("a  b\nc") == "a b c"
    long = names.display_name("é" * 300)
    assert len(long) == 128 and long.endswith("…")


def test_label_value_is_made_valid():
    assert names.label_value("My App.py") == "my-app-py"
    assert len(names.label_value("x" * 100)) == 63


def test_check_labels_accepts_vertex_labels():
    assert names.check_labels({"team": "ml-research_1", "empty": ""}, "f") == {"team": "ml-research_1", "empty": ""}
    assert names.check_labels({"flag": True}, "f") == {"flag": "true"}


@pytest.mark.parametrize(
    "labels,field",
    [
        ({"Team": "x"}, "f key"),
        ({"1team": "x"}, "f key"),
        ({"k" * 64: "x"}, "f key"),
        ({"team": "X"}, "f.team"),
        ({"team": "a b"}, "f.team"),
        ({"team": "v" * 64}, "f.team"),
    ],
)
def test_check_labels_rejects(labels, field):
    with pytest.raises(ConfigError) as e:
        names.check_labels(labels, "f")
    assert e.value.field == field
    assert "at most 63 characters" in str(e.value)


def test_too_many_labels():
    with pytest.raises(ConfigError, match="at most 64 labels"):
        names.check_labels({f"k{i}": "v" for i in range(65)}, "f")


@pytest.mark.parametrize(
    "raw,shown",
    [
        ('app-0 +msg="hello world"', "app-0 +msg='hello world'"),
        ("app-0 +path=C\\:\\\\data", "app-0 +path=C/://data"),
        ("app-0 +t='a\nb\tc\r\n'", "app-0 +t='a b c '"),
        ("app-0 +bell=\x07\x1b[0m\x7f\x9b", "app-0 +bell=[0m"),
        ("app-0 +p={{$.inputs.parameters['project']}}", "app-0 +p={ {$.inputs.parameters['project']}}"),
        ("app-0 +q={{{$}}}", "app-0 +q={ { {$}}}"),
        ("app-0 +name=José 東京 🚀", "app-0 +name=José 東京 🚀"),
        ("app-0 +bytes=\udcff\udcfe", "app-0 +bytes="),
    ],
)
def test_display_name_is_safe_in_gcpc_payload_template(raw, shown):
    assert names.display_name(raw) == shown


def test_any_display_name_survives_gcpc_payload_template():
    """gcpc pastes the display name into `"display_name": "..."` unescaped and parses the
    payload with json.loads (strict): whatever the text, the name must come back unchanged."""
    import json

    samples = ["".join(map(chr, range(start, start + 64))) for start in range(0, 0x3000, 64)]
    samples += ["{{" * 70, '"' * 200, "\\" * 200, "é" * 300, "{{$}}" + "\udc80" * 3]
    for text in samples:
        name = names.display_name(text)
        assert json.loads('{"display_name": "' + name + '"}')["display_name"] == name
        assert "{{" not in name and len(name) <= names.MAX_DISPLAY_NAME
        name.encode("utf-8")
