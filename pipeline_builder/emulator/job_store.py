"""PipelineJobs on disk, so an emulator restarted on the same data dir still knows them.

Each job has a folder `runs/ID/` holding `job.json` (its resource, written when its state
changes), `tasks.json` (every task's details, written when the job starts and ends) and,
while it runs, `tasks.jsonl` (a line appended per task change: cheap for thousands of
trials, and nothing a finished task did is lost if the emulator is killed). A job that had
not ended when the emulator stopped (or was killed) no longer runs: it comes back FAILED
(CANCELLED if a cancel was asked), its unfinished tasks FAILED saying why, rather than
RUNNING for ever.
"""

import json
import sys
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional

from hydra_vertex_pipelines.components import strict_json
from hydra_vertex_pipelines.components.atomic_write import write_atomic
from hydra_vertex_pipelines.components.clock import rfc3339

from ..cloud.states import PIPELINE_ENDED, TASK_ENDED, PipelineState, TaskDetailState

ENDED = PIPELINE_ENDED
UNAVAILABLE = 14  # google.rpc.Code: the service (here, the emulator) went away
STOPPED = "The emulator stopped while this job ran: its tasks were stopped and it will not go on."


class SavedJob(NamedTuple):
    job_id: str
    resource: Dict[str, Any]
    context: Optional[Dict[str, Any]]
    tasks: Optional[List[Dict[str, Any]]]


class JobStore:
    """Reads and writes the job folders under `runs`."""

    def __init__(self, runs: Path) -> None:
        self.runs = runs

    def folder(self, job_id: str) -> Path:
        return self.runs / job_id

    def save(self, job_id: str, resource: Dict[str, Any], context: Optional[Dict[str, Any]]) -> None:
        write_atomic(self.folder(job_id) / "job.json", strict_json.dumps({"resource": resource, "context": context}))

    def save_tasks(self, job_id: str, tasks: List[Dict[str, Any]], ended: bool = False) -> None:
        """Every task's details; once the job has `ended`, they replace the change log."""
        write_atomic(self.folder(job_id) / "tasks.json", strict_json.dumps(tasks))
        if ended:
            (self.folder(job_id) / "tasks.jsonl").unlink(missing_ok=True)

    def task_changed(self, job_id: str, task: Dict[str, Any]) -> None:
        with open(self.folder(job_id) / "tasks.jsonl", "a", encoding="utf-8") as log:
            log.write(strict_json.dumps(task) + "\n")

    def _tasks(self, folder: Path) -> Optional[List[Dict[str, Any]]]:
        """The last snapshot with every logged change after it applied."""
        snapshot = folder / "tasks.json"
        tasks = json.loads(snapshot.read_text(encoding="utf-8")) if snapshot.is_file() else None
        log = folder / "tasks.jsonl"
        if not log.is_file():
            return tasks
        by_name = {t["taskName"]: t for t in tasks or []}
        with open(log, encoding="utf-8") as lines:  # a line at a time: the log grows with every change
            for line in lines:
                try:
                    task = json.loads(line)
                except ValueError:  # the line being written when the emulator was killed
                    continue
                by_name[task["taskName"]] = task
        return list(by_name.values())

    def load(self) -> List[SavedJob]:
        """Every saved job, oldest first; one that had not ended is ended (and saved so)."""
        jobs = []
        for path in sorted(self.runs.glob("*/job.json")) if self.runs.is_dir() else []:
            job_id = path.parent.name
            try:
                saved = json.loads(path.read_text(encoding="utf-8"))
                tasks = self._tasks(path.parent)
            except (OSError, ValueError, KeyError) as e:
                print(f"emulator: job {job_id} is not loaded, its files are unreadable: {e}", file=sys.stderr)
                continue
            job = SavedJob(job_id, saved["resource"], saved.get("context"), tasks)
            if job.resource.get("state") not in ENDED:
                interrupted(job.resource, job.tasks or [])
                self.save_tasks(job_id, job.tasks or [], ended=True)
                self.save(job_id, job.resource, job.context)
            jobs.append(job)
        return sorted(jobs, key=lambda j: str(j.resource.get("createTime", "")))


def interrupted(resource: Dict[str, Any], tasks: List[Dict[str, Any]]) -> None:
    """Ends, in place, a job whose run the emulator's stop ended."""
    stamp = rfc3339()
    cancelling = resource.get("state") == PipelineState.CANCELLING
    resource.update(
        state=PipelineState.CANCELLED if cancelling else PipelineState.FAILED,
        error={"code": UNAVAILABLE, "message": STOPPED},
        endTime=resource.get("endTime") or stamp,
        updateTime=stamp,
    )
    for task in tasks:
        if task.get("state") in TASK_ENDED and not (task.get("state") == TaskDetailState.CANCELLED and not cancelling):
            continue  # ended on its own (a cancel that was asked for included)
        ran = "startTime" in task
        message = "the emulator stopped while this task ran" if ran else "the emulator stopped before this task started"
        task.update(
            state=TaskDetailState.FAILED, error={"code": UNAVAILABLE, "message": message}, endTime=task.get("endTime") or stamp
        )
