"""What one sweep batch is: the pipeline's identity, its trials and its collector, as plain data."""

import dataclasses
import functools
import json
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

from hydra_vertex_pipelines.components.sweep_files import SweepFiles, gcs_to_fuse

from .trials import TrialSpec, trial_rows

# Above this, the collector's trial list goes into a file in the run folder, since the
# collector's executor input travels as one command-line argument (at most 128 KiB).
INLINE_TRIALS_LIMIT = 32 * 1024


@dataclass(frozen=True)
class SweepSpec:
    """One sweep batch: the pipeline's identity, its trials and its collector."""

    name: str
    run_id: str
    pipeline_root: str
    run_root: str  # gs:// folder of this run; the summary lands here
    trials: Tuple[TrialSpec, ...]
    collector_image: str
    description: str = ""
    # Tells this batch's files in the run folder apart: summary.json, summary-4.json, ...
    tag: str = ""
    # tasks: one named task per trial; parallel_for: one task looping over the trials,
    # at most `parallelism` at once (None: no limit).
    fan_out: str = "tasks"
    parallelism: Optional[int] = None
    # The best trial is the one with the lowest (minimize) or highest (maximize) value of
    # `objective_key` in its return value ("": the return value itself).
    objective_key: str = ""
    objective_direction: str = "minimize"
    # Where the trials' CustomJobs run, for console links in the report ("": unknown).
    project: str = ""
    location: str = ""
    # The user's hourly rates (JSON: machine_types and accelerator_types, each name ->
    # {spot, standard}) for the report's estimated cost; "": no estimate.
    cost_rates: str = ""
    # The Vertex AI Experiment the collector logs each trial to as a run (components.
    # experiments.ExperimentTarget as JSON); "": none.
    experiment: str = ""

    def to_dict(self) -> Dict[str, Any]:
        """Plain JSON data: the manifest keeps it, so `recover` can build the sweep's next
        attempt without the app (every trial in full, env values included: they were
        checked for secrets before)."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["trials"] = [t.to_dict() for t in self.trials]
        return data

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "SweepSpec":
        """The sweep `to_dict` gave."""
        fields = dict(data)
        fields["trials"] = tuple(TrialSpec.from_dict(t) for t in data["trials"])
        return cls(**fields)

    @property
    def files(self) -> SweepFiles[str]:
        """The batch's files in the run folder (gs://)."""
        return SweepFiles(self.run_root, self.tag)

    @functools.cached_property
    def trials_file(self) -> Optional[str]:
        """gs:// URI of the collector's trial list when it is too big to pass inline."""
        if len(json.dumps(trial_rows(self.trials))) <= INLINE_TRIALS_LIMIT:
            return None
        return self.files.trials

    @property
    def summary_path(self) -> str:
        """Where the collector writes the summary, as the collector sees it (/gcs/...)."""
        return gcs_to_fuse(self.files.summary)

    @property
    def report_path(self) -> str:
        """Where the collector writes the HTML report, beside the summary."""
        return gcs_to_fuse(self.files.report)
