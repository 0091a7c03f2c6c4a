"""The collector as a KFP component that runs in an image already holding this package.

It is a Python component without the usual `pip install kfp` at start: the image (by
default the trial image) has kfp and this package, and many training networks have no
egress to install anything.
"""

from typing import Any

from kfp import dsl


def collect_trials(
    trials: list,
    summary_path: str,
    metrics: dsl.Output[dsl.Metrics],
    markdown: dsl.Output[dsl.Markdown],
    html: dsl.Output[dsl.HTML],
    trials_path: str = "",
    report_path: str = "",
    objective_key: str = "",
    objective_direction: str = "minimize",
    project: str = "",
    location: str = "",
    run_id: str = "",
    cost_rates: str = "",
    experiment: str = "",
):
    """Reads every trial's .vertex/result.json, writes summary.json, logs numeric results and
    renders the trial table and plots (Markdown and HTML artifacts, HTML also at
    `report_path` unless it is ""). A result of another run than `run_id` is no result.
    `cost_rates` (JSON, "" for none) are the user's hourly rates for an estimated cost.
    With `experiment` (an ExperimentTarget's JSON), each trial is then logged as a run of
    that Vertex AI Experiment, and the summary rewritten to say so.

    Large sweeps list their trials in a file (`trials_path`): the executor input is one
    command-line argument, which Linux caps at 128 KiB.
    """
    import json
    import os

    from hydra_vertex_pipelines.components.collector import collect, write_text
    from hydra_vertex_pipelines.components.report import render_html, render_markdown

    if trials_path:
        with open(trials_path, encoding="utf-8") as f:
            trials = json.load(f)
    summary = collect(trials, summary_path, objective_key, objective_direction, project, location, run_id, cost_rates)
    for key, value in summary["metrics"].items():
        metrics.log_metric(key, value)
    for status, count in summary["counts"].items():
        metrics.log_metric(f"trials_{status.lower()}", count)
    totals = summary["usage"]["totals"]["machine_hours"]
    metrics.log_metric("machine_hours", sum(totals.values()))
    if summary["best"]:
        metrics.log_metric("best_trial", summary["best"]["number"])
        metrics.log_metric("best_objective", summary["best"]["objective"])
    write_text(markdown.path, render_markdown(summary))
    # One page for both: its local links are relative to the report file's folder.
    page = render_html(summary, os.path.dirname(report_path) if report_path else None)
    write_text(html.path, page)
    if report_path:
        write_text(report_path, page)
    if experiment:  # last: the results are all written before any request to Vertex AI
        from hydra_vertex_pipelines.components.collector import write_summary
        from hydra_vertex_pipelines.components.experiments import ExperimentTarget, log_trials

        summary["experiment"] = log_trials(summary["trials"], run_id, ExperimentTarget.from_json(experiment))
        write_summary(summary, summary_path)


def collector_op(image: str) -> Any:
    """The collector component, to run in `image`."""
    return dsl.component(collect_trials, base_image=image, install_kfp_package=False)
