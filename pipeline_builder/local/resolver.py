"""Fills a task's inputs and its command's placeholders as the Kubeflow Pipelines v2 backend does.

The rules come from kubeflow/pipelines, `backend/src/v2`:

- `driver/resolve.go` (`resolveInputs`, `resolveInputParameter`): an input is a constant
  (a whole constant may be a pipeline-level placeholder such as `{{$.pipeline_job_name}}`),
  an input of the parent DAG, or a loop's item; a `parameterExpressionSelector` then picks
  a field of it; each value is checked against the input's declared type, and a STRING
  input takes any value as its text. An optional input that resolves to null is left out.
- `driver/util.go` (`getItems`): a loop's items are a list, or its JSON text.
- `component/launcher_v2.go` (`addDefaultParams`, `getPlaceholders`, `compileCmdAndArgs`):
  declared defaults fill inputs without a value, then placeholders are pasted into the
  command and arguments; `metadata/converter.go` (`PbValueToText`) and `getPlaceholders`
  say how a value becomes text: strings raw, numbers as `strconv.FormatFloat(v, 'f', -1,
  64)`, booleans `true`/`false`, lists and structs as `json.Marshal` of their protobuf
  JSON (compact, keys sorted, `<`, `>` and `&` escaped). Unknown placeholders stay as
  they are.

Vertex resolves more placeholders than that backend: google-cloud-pipeline-components'
defaults name the run's project, location, service account... (`_placeholders.py`), and
`.json_escape[N]` escapes a value for a JSON string nested N+1 levels deep.

One deliberate difference: the open-source launcher replaces placeholders one after the
other over the whole argument (`strings.ReplaceAll`, in map order), so placeholder text
inside one input's value can be replaced by another input's value. Here an argument is
read once and values are pasted without being read again: text a user wrote stays text.
"""

import json
import math
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

_PLACEHOLDER = re.compile(r"\{\{\$(?P<path>[^{}]*)\}\}")
_ESCAPE = re.compile(r"^(?P<path>.*?)\.json_escape\[(?P<level>[0-9]+)\]$")
_INPUT = re.compile(r"^\.inputs\.parameters\['(?P<name>[^']*)'\]$")
_OUTPUT_FILE = re.compile(r"^\.outputs\.parameters\['(?P<name>[^']*)'\]\.output_file$")
_ARTIFACT = re.compile(r"^\.outputs\.artifacts\['(?P<name>[^']*)'\]\.(?P<part>uri|path)$")
_SELECTOR = re.compile(r'^parseJson\(string_value\)(?P<keys>(\["[^"]*"\]|\[[0-9]+\])+)$')
_SELECTOR_KEY = re.compile(r'\["([^"]*)"\]|\[([0-9]+)\]')
# Go's encoding/json escapes these in what json.Marshal returns, even from a Marshaler.
_HTML_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_TYPES = {
    "NUMBER_INTEGER": "number",
    "NUMBER_DOUBLE": "number",
    "BOOLEAN": "bool",
    "LIST": "list",
    "STRUCT": "struct",
    "TASK_FINAL_STATUS": "struct",
}


class ResolveError(ValueError):
    """A task's inputs cannot be resolved as the backend would (the backend fails the task too)."""


@dataclass(frozen=True)
class RunContext:
    """The values of a run's pipeline-level placeholders."""

    job_name: str = "local-run"
    job_resource_name: str = "projects/local/locations/local/pipelineJobs/local-run"
    job_id: str = "local-run"
    create_time: str = ""
    project: str = "local"
    location: str = "local"
    pipeline_root: str = ""
    service_account: str = ""
    network: str = ""
    persistent_resource_id: str = ""
    encryption_key_name: str = ""

    def whole_values(self, task_name: str) -> Dict[str, str]:
        """Placeholders that stand for a whole input value, and what they become."""
        return {
            "{{$.pipeline_job_name}}": self.job_name,
            "{{$.pipeline_job_resource_name}}": self.job_resource_name,
            "{{$.pipeline_job_uuid}}": self.job_id,
            "{{$.pipeline_task_name}}": task_name,
            "{{$.pipeline_task_uuid}}": f"{self.job_id}-{task_name}",
            "{{$.pipeline_job_create_time_utc}}": self.create_time,
            "{{$.pipeline_job_schedule_time_utc}}": self.create_time,
            "{{$.pipeline_root}}": self.pipeline_root,
            "{{$.pipeline_google_cloud_project_id}}": self.project,
            "{{$.pipeline_google_cloud_location}}": self.location,
            "{{$.pipeline_service_account}}": self.service_account,
            "{{$.pipeline_network}}": self.network,
            "{{$.pipeline_persistent_resource_id}}": self.persistent_resource_id,
            "{{$.pipeline_encryption_key_name}}": self.encryption_key_name,
        }


# ---- values as text ---------------------------------------------------------------------


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, dict):
        return "struct"
    raise ResolveError(f"{type(value).__name__} is not a pipeline parameter value")


def _digits(number: float) -> Decimal:
    """The shortest decimal that reads back as `number` (what Go's precision -1 gives)."""
    return Decimal(repr(float(number))).normalize()


def format_number(number: float) -> str:
    """Go's `strconv.FormatFloat(n, 'f', -1, 64)`: every parameter is a double in the spec."""
    number = float(number)
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "+Inf" if number > 0 else "-Inf"
    return format(_digits(number), "f")


def _json_number(number: float) -> str:
    """A number in protojson (Go's encoding/json rules: exponent form below 1e-6 and from 1e21)."""
    number = float(number)
    if math.isnan(number):
        return '"NaN"'
    if math.isinf(number):
        return '"Infinity"' if number > 0 else '"-Infinity"'
    if number == 0 or 1e-6 <= abs(number) < 1e21:
        return format(_digits(number), "f")
    sign, digits, exponent = _digits(number).as_tuple()
    assert isinstance(exponent, int)  # a finite number's (not 'n', 'N' or 'F')
    text = "".join(map(str, digits))
    exponent += len(digits) - 1
    mantissa = text[0] + (f".{text[1:]}" if len(text) > 1 else "")
    power = f"-{-exponent}" if exponent < 0 else f"+{exponent:02d}"
    return f"{'-' if sign else ''}{mantissa}e{power}"


def _json_string(text: str) -> str:
    out = ['"']
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif char < " ":
            out.append({"\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char, f"\\u{ord(char):04x}"))
        else:
            out.append(_HTML_ESCAPES.get(char, char))
    out.append('"')
    return "".join(out)


def to_json(value: Any) -> str:
    """`json.Marshal` of a protobuf Struct or ListValue, as the backend writes lists and structs."""
    kind = _kind(value)
    if kind == "null":
        return "null"
    if kind == "bool":
        return "true" if value else "false"
    if kind == "number":
        return _json_number(value)
    if kind == "string":
        return _json_string(value)
    if kind == "list":
        return "[" + ",".join(to_json(v) for v in value) + "]"
    return "{" + ",".join(f"{_json_string(str(k))}:{to_json(value[k])}" for k in sorted(value, key=str)) + "}"


def value_text(value: Any) -> str:
    """A parameter value as the text a placeholder becomes (`PbValueToText`)."""
    kind = _kind(value)
    if kind == "null":
        return ""
    if kind == "string":
        return value
    if kind == "bool":
        return "true" if value else "false"
    if kind == "number":
        return format_number(value)
    return to_json(value)


# ---- inputs -----------------------------------------------------------------------------


def root_scope(spec: Mapping[str, Any], parameters: Mapping[str, Any]) -> Dict[str, Any]:
    """The root DAG's input values: the run's parameters, else their declared defaults."""
    scope: Dict[str, Any] = {}
    for name, definition in spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {}).items():
        if name in parameters:
            scope[name] = parameters[name]
        elif "defaultValue" in definition:
            scope[name] = definition["defaultValue"]
        elif definition.get("isOptional"):
            scope[name] = None
    return scope


def loop_items(iterator: Mapping[str, Any], scope: Mapping[str, Any]) -> List[Any]:
    """A ParallelFor's items: fixed at compile time (`raw`) or an input of the parent DAG."""
    items = iterator.get("items", {})
    if "raw" in items:
        value: Any = items["raw"]
    elif items.get("inputParameter") in scope:
        value = scope[items["inputParameter"]]
    else:
        raise ResolveError(f"the loop's items {items!r} are not an input of its DAG")
    if isinstance(value, str):
        value = json.loads(value)
    if not isinstance(value, list):
        raise ResolveError(f"value of type {_kind(value)} cannot be iterated")
    return value


def select(value: Any, selector: str) -> Any:
    """Evaluates KFP's `parseJson(string_value)["field"]...` selector on a value."""
    found = _SELECTOR.match(selector)
    if found is None:
        raise ResolveError(f"the parameter expression selector {selector!r} is not supported here")
    selected = json.loads(value_text(value))
    for key, index in _SELECTOR_KEY.findall(found.group("keys")):
        if key or not index:
            if not isinstance(selected, dict) or key not in selected:
                raise ResolveError(f"evaluation of parameter expression selector {selector!r} failed: no such key: {key}")
            selected = selected[key]
        else:
            if not isinstance(selected, list) or int(index) >= len(selected):
                failed = f"evaluation of parameter expression selector {selector!r} failed"
                raise ResolveError(f"{failed}: index out of range: {index}")
            selected = selected[int(index)]
    return selected


def _given(given: Mapping[str, Any], scope: Mapping[str, Any], whole: Mapping[str, str]) -> Any:
    if "runtimeValue" in given:
        value = given["runtimeValue"].get("constant")
        return whole.get(value, value) if isinstance(value, str) else value
    if "componentInputParameter" in given:
        name = given["componentInputParameter"]
        if name not in scope:
            raise ResolveError(f"parent DAG does not have input parameter {name}")
        return scope[name]
    raise ResolveError(f"an input from {sorted(given)} cannot be resolved before its producer runs")


def resolve_inputs(
    component: Mapping[str, Any],
    task: Mapping[str, Any],
    scope: Mapping[str, Any],
    context: RunContext,
    task_name: str,
    skip: Optional[str] = None,
) -> Dict[str, Any]:
    """A task's parameter values, defaults applied, as its executor (or its DAG) gets them.

    `scope` holds the parent DAG's input values; `skip` names an input the caller fills
    itself (a loop's item, for the loop's DAG)."""
    definitions = component.get("inputDefinitions", {}).get("parameters", {})
    whole = context.whole_values(task_name)
    values: Dict[str, Any] = {}
    for name, given in task.get("inputs", {}).get("parameters", {}).items():
        definition = definitions.get(name, {})
        if definition.get("parameterType") == "TASK_CONFIG":
            continue
        value = _given(given, scope, whole)
        if value is None and "componentInputParameter" in given:
            if definition.get("isOptional"):
                continue
            raise ResolveError(f"input parameter {name!r} resolved to null")
        if given.get("parameterExpressionSelector"):
            value = select(value, given["parameterExpressionSelector"])
        literals = definition.get("literals")
        if literals and value not in literals:
            raise ResolveError(f"input parameter {name!r}: {value!r} is not one of {literals}")
        values[name] = value
    for name, definition in definitions.items():
        if name == skip:
            continue
        if name not in values:
            if "defaultValue" in definition:
                default = definition["defaultValue"]
                values[name] = whole.get(default, default) if isinstance(default, str) else default
            elif not definition.get("isOptional"):
                raise ResolveError(f"neither value nor default value provided for non-optional parameter {name!r}")
            continue
        values[name] = _checked(name, values[name], definition.get("parameterType", "STRING"))
    return values


def _checked(name: str, value: Any, declared: str) -> Any:
    """The driver's type check: a STRING input takes any value as text, others must match."""
    if declared == "STRING":
        return value if isinstance(value, str) else value_text(value)
    kind = _kind(value)
    if kind == "null":
        raise ResolveError(f"got null for input parameter {name!r}")
    expected = _TYPES.get(declared)
    if expected is not None and kind != expected:
        raise ResolveError(f"input parameter {name!r} type mismatch: expect {declared}, got {kind}")
    return value


# ---- placeholders -----------------------------------------------------------------------


def executor_outputs(component: Mapping[str, Any], task_dir: Path) -> Dict[str, Any]:
    """Where a task's outputs go (in `task_dir`), in the executor input's form."""
    outputs: Dict[str, Any] = {"outputFile": str(task_dir / "executor_output.json")}
    definitions = component.get("outputDefinitions", {})
    if definitions.get("artifacts"):
        outputs["artifacts"] = {
            key: {"artifacts": [{"name": key, "type": d.get("artifactType", {}), "uri": str(task_dir / key), "metadata": {}}]}
            for key, d in definitions["artifacts"].items()
        }
    if definitions.get("parameters"):
        outputs["parameters"] = {key: {"outputFile": str(task_dir / "outputs" / key)} for key in definitions["parameters"]}
    return outputs


def filled_command(container: Mapping[str, Any], given: Mapping[str, Any]) -> List[str]:
    """A container's command and arguments with the executor input's placeholders filled."""
    return [fill(a, given) for a in list(container.get("command", [])) + list(container.get("args", []))]


def executor_input(values: Mapping[str, Any], outputs: Mapping[str, Any]) -> Dict[str, Any]:
    """The executor input a task's `{{$}}` stands for (ExecutorInput in its JSON form)."""
    return {"inputs": {"parameterValues": dict(values)}, "outputs": dict(outputs)}


def _placeholder(path: str, given: Mapping[str, Any]) -> Optional[str]:
    inputs = given.get("inputs", {}).get("parameterValues", {})
    outputs = given.get("outputs", {})
    if path == "":
        return to_json(given)
    found = _INPUT.match(path)
    if found:
        name = found.group("name")
        return value_text(inputs[name]) if name in inputs else None
    found = _OUTPUT_FILE.match(path)
    if found and found.group("name") in outputs.get("parameters", {}):
        return outputs["parameters"][found.group("name")]["outputFile"]
    found = _ARTIFACT.match(path)
    if found and found.group("name") in outputs.get("artifacts", {}):
        return outputs["artifacts"][found.group("name")]["artifacts"][0]["uri"]
    if path == ".outputs.output_file" and "outputFile" in outputs:
        return outputs["outputFile"]
    if path.startswith(".inputs.artifacts"):
        raise ResolveError(f"{{{{${path}}}}}: input artifacts are not supported by the local runner")
    return None


def fill(template: str, given: Mapping[str, Any]) -> str:
    """`template` with every placeholder replaced, in one pass: pasted values are not read again."""

    def one(match: "re.Match[str]") -> str:
        path, levels = match.group("path"), 0
        escaped = _ESCAPE.match(path)
        if escaped:
            path, levels = escaped.group("path"), int(escaped.group("level")) + 1
        text = _placeholder(path, given)
        if text is None:
            return match.group(0)
        for _ in range(levels):
            text = json.dumps(text, ensure_ascii=False)[1:-1]
        return text

    return _PLACEHOLDER.sub(one, template)
