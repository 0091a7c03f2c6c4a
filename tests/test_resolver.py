"""The resolver fills inputs and placeholders as the KFP v2 backend does (backend/src/v2)."""

import json

import pytest

from hydra_vertex_pipelines.pipeline_builder.local.resolver import (
    ResolveError,
    RunContext,
    executor_input,
    fill,
    format_number,
    loop_items,
    resolve_inputs,
    root_scope,
    select,
    to_json,
    value_text,
)


@pytest.mark.parametrize(
    "value,text",
    [
        ("a \"quoted\" {{$.inputs.parameters['project']}}", "a \"quoted\" {{$.inputs.parameters['project']}}"),
        (3, "3"),
        (3.0, "3"),
        (0.1, "0.1"),
        (-0.0, "-0"),
        (1e21, "1000000000000000000000"),
        (1.5e-7, "0.00000015"),
        (2**60, "1152921504606847000"),  # every number is a double in the spec
        (True, "true"),
        (False, "false"),
        (None, ""),
        ([1, "a", {"b": 2.5}], '[1,"a",{"b":2.5}]'),
        ({"z": 1, "a": [True, None]}, '{"a":[true,null],"z":1}'),
        ({"k": "<&>\n\t\x01\u2028é"}, '{"k":"\\u003c\\u0026\\u003e\\n\\t\\u0001\\u2028é"}'),
        ([1e21, 1e-7, 123456789.0], "[1e+21,1e-7,123456789]"),
    ],
)
def test_values_become_text_as_the_launcher_pastes_them(value, text):
    assert value_text(value) == text


def test_json_of_lists_and_structs_reads_back():
    value = {"pools": [{"replica_count": 2, "args": ["x=\"1\"", "p=C:\\data"]}], "labels": {}}
    assert json.loads(to_json(value)) == value
    assert format_number(float("inf")) == "+Inf" and format_number(float("nan")) == "NaN"


COMPONENT = {
    "inputDefinitions": {
        "parameters": {
            "display_name": {"parameterType": "STRING"},
            "count": {"parameterType": "NUMBER_INTEGER", "defaultValue": 1, "isOptional": True},
            "pools": {"parameterType": "LIST", "defaultValue": [], "isOptional": True},
            "labels": {"parameterType": "STRUCT", "defaultValue": {}, "isOptional": True},
            "project": {"parameterType": "STRING", "defaultValue": "{{$.pipeline_google_cloud_project_id}}", "isOptional": True},
            "note": {"parameterType": "STRING", "isOptional": True},
        }
    }
}


def test_constants_defaults_and_pipeline_placeholders():
    task = {"inputs": {"parameters": {"display_name": {"runtimeValue": {"constant": "{{$.pipeline_job_name}}"}}}}}
    values = resolve_inputs(COMPONENT, task, {}, RunContext(job_name="job-7", project="my-proj"), "t")
    assert values == {"display_name": "job-7", "count": 1, "pools": [], "labels": {}, "project": "my-proj"}


def test_loop_item_fields_are_selected_and_strings_take_any_value_as_text():
    item = {"display_name": 12.0, "pools": [{"replica_count": 1}], "labels": {"a": "b"}}
    given = {"componentInputParameter": "item"}
    task = {
        "inputs": {
            "parameters": {
                "display_name": {**given, "parameterExpressionSelector": 'parseJson(string_value)["display_name"]'},
                "pools": {**given, "parameterExpressionSelector": 'parseJson(string_value)["pools"]'},
                "labels": {**given, "parameterExpressionSelector": 'parseJson(string_value)["labels"]'},
            }
        }
    }
    values = resolve_inputs(COMPONENT, task, {"item": item}, RunContext(), "t")
    assert values["display_name"] == "12" and values["pools"] == [{"replica_count": 1}] and values["labels"] == {"a": "b"}


def test_bad_inputs_fail_as_the_driver_fails_them():
    with pytest.raises(ResolveError, match="no such key: missing"):
        select({"a": 1}, 'parseJson(string_value)["missing"]')
    with pytest.raises(ResolveError, match="neither value nor default"):
        resolve_inputs(COMPONENT, {"inputs": {"parameters": {}}}, {}, RunContext(), "t")
    wrong = {
        "inputs": {
            "parameters": {"display_name": {"runtimeValue": {"constant": "x"}}, "pools": {"runtimeValue": {"constant": "[]"}}}
        }
    }
    with pytest.raises(ResolveError, match="type mismatch: expect LIST, got string"):
        resolve_inputs(COMPONENT, wrong, {}, RunContext(), "t")
    with pytest.raises(ResolveError, match="parent DAG does not have input parameter absent"):
        resolve_inputs(
            COMPONENT, {"inputs": {"parameters": {"display_name": {"componentInputParameter": "absent"}}}}, {}, RunContext(), "t"
        )


def test_optional_input_resolving_to_null_takes_its_default():
    task = {
        "inputs": {"parameters": {"display_name": {"runtimeValue": {"constant": "d"}}, "count": {"componentInputParameter": "n"}}}
    }
    assert resolve_inputs(COMPONENT, task, {"n": None}, RunContext(), "t")["count"] == 1


def test_root_scope_and_items():
    spec = {"root": {"inputDefinitions": {"parameters": {"a": {"defaultValue": 1}, "b": {"isOptional": True}, "c": {}}}}}
    assert root_scope(spec, {"c": 3}) == {"a": 1, "b": None, "c": 3}
    assert loop_items({"items": {"raw": '[{"x":1}]'}}, {}) == [{"x": 1}]
    assert loop_items({"items": {"inputParameter": "xs"}}, {"xs": [1, 2]}) == [1, 2]


def test_placeholders_are_filled_in_one_pass():
    """A value holding placeholder text stays text, whatever order the inputs come in."""
    values = {
        "display_name": "trial {{$.inputs.parameters['project']}} \"q\"",
        "project": "p",
        "pools": [{"args": ["{{$}}"]}],
        "flag": True,
    }
    given = executor_input(values, {"parameters": {"gcp_resources": {"outputFile": "/out/gcp"}}})
    template = (
        "{\"display_name\": \"{{$.inputs.parameters['display_name']}}\", \"pools\": {{$.inputs.parameters['pools']}}, "
        "\"flag\": {{$.inputs.parameters['flag']}}, \"project\": \"{{$.inputs.parameters['project']}}\"}"
    )
    assert fill(template, given) == (
        "{\"display_name\": \"trial {{$.inputs.parameters['project']}} \"q\"\", \"pools\": [{\"args\":[\"{{$}}\"]}], "
        "\"flag\": true, \"project\": \"p\"}"
    )
    assert fill("{{$.outputs.parameters['gcp_resources'].output_file}}", given) == "/out/gcp"
    assert fill("{{$.inputs.parameters['unknown']}}", given) == "{{$.inputs.parameters['unknown']}}"
    assert json.loads(fill("{{$}}", given))["inputs"]["parameterValues"]["project"] == "p"


def test_json_escape_placeholders_nest_a_value_in_json_strings():
    given = executor_input({"name": 'say "hi"'}, {})
    once = fill("{\"n\": \"{{$.inputs.parameters['name'].json_escape[0]}}\"}", given)
    assert json.loads(once) == {"n": 'say "hi"'}
    twice = fill("{\"outer\": \"{\\\"n\\\": \\\"{{$.inputs.parameters['name'].json_escape[1]}}\\\"}\"}", given)
    assert json.loads(json.loads(twice)["outer"]) == {"n": 'say "hi"'}


def test_a_kfp_loop_over_a_pipeline_parameter_runs_with_resolved_inputs(tmp_path):
    """Items from a pipeline parameter, a field of each item, a pipeline-level default and
    a struct input, through kfp's own compiler and the local runner."""
    from kfp import compiler, dsl

    from hydra_vertex_pipelines.pipeline_builder.local import LocalRunner, RunnerSettings, load_pipeline
    from hydra_vertex_pipelines.pipeline_builder.spec.cloud_paths import PathMap

    @dsl.container_component
    def record(out: str, name: str, size: float, extra: dict, tag: str = "dflt"):
        return dsl.ContainerSpec(
            image="python:3",
            command=["python3", "-c", "import sys; open(sys.argv[1], 'a').write('|'.join(sys.argv[2:]) + '\\n')"],
            args=[out, name, size, extra, tag],
        )

    @dsl.pipeline(name="loop")
    def pipeline(items: list, out: str, extra: dict = {"k": "<v>"}):  # noqa: B006
        with dsl.ParallelFor(items=items, parallelism=1) as item:
            record(out=out, name=item.who, size=item.size, extra=extra)

    compiler.Compiler().compile(pipeline, str(tmp_path / "p.yaml"))
    out = tmp_path / "out.txt"
    items = [{"who": "{{$.inputs.parameters['tag']}}", "size": 2}, {"who": 'say "hi"', "size": 0.5}]
    settings = RunnerSettings(PathMap(str(tmp_path)), tmp_path / "work", parameters={"items": items, "out": str(out)})
    runner = LocalRunner(load_pipeline(tmp_path / "p.yaml"), settings)
    assert runner.run().state == "SUCCEEDED"
    assert sorted(out.read_text().splitlines()) == sorted(
        ["{{$.inputs.parameters['tag']}}|2|{\"k\":\"\\u003cv\\u003e\"}|dflt", 'say "hi"|0.5|{"k":"\\u003cv\\u003e"}|dflt']
    )
