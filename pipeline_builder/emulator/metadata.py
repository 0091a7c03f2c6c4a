"""The part of Vertex ML Metadata that Vertex AI Experiments use.

`PipelineJob.submit(experiment=...)` makes google-cloud-aiplatform find or create the
default metadata store, the experiment's context and the run's context, and add the run
as the experiment's child. An experiment run (`aiplatform.start_run`) is a context too,
its parameters, metrics and state in its metadata, which `log_params`, `log_metrics` and
`end_run` update; `ExperimentRun.list` and `get_experiment_df` list the experiment's
child contexts, and its executions and artifacts (older runs' and pipelines' records),
of which the emulator keeps none. Given a file, the contexts are kept in it, so a
restarted emulator still knows its experiments and their runs.
"""

import json
import re
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from hydra_vertex_pipelines.components import strict_json
from hydra_vertex_pipelines.components.atomic_write import write_atomic
from hydra_vertex_pipelines.components.clock import rfc3339

from .metadata_filter import FilterError, parse
from .replies import Reply, error_reply

_STORE = re.compile(
    r"^/v1(?:beta1)?/(projects/[^/]+/locations/[^/]+)/metadataStores(?:/([^/:]+))?"
    r"(?:/(contexts|executions|artifacts)(?:/([^/:]+))?(:\w+)?)?$"
)


class MetadataService:
    """Metadata stores and contexts, kept in memory and, if `path` is given, in that file."""

    def __init__(self, path: Optional[Path] = None) -> None:
        self.path = path
        saved = json.loads(path.read_text(encoding="utf-8")) if path is not None and path.is_file() else {}
        self.contexts: Dict[str, Dict[str, Any]] = saved.get("contexts", {})
        self.children: Dict[str, List[str]] = saved.get("children", {})
        self._lock = threading.Lock()

    def _save(self) -> None:
        """Writes every context (the caller holds the lock); a stop mid-write keeps the last file."""
        if self.path is not None:
            write_atomic(self.path, strict_json.dumps({"contexts": self.contexts, "children": self.children}))

    def matches(self, path: str) -> bool:
        return _STORE.match(path) is not None

    def handle(self, method: str, path: str, query: Mapping[str, List[str]], body: Any) -> Reply:
        match = _STORE.match(path)
        assert match is not None
        parent, store, collection, context_id, verb = match.groups()
        store_name = f"{parent}/metadataStores/{store or (query.get('metadataStoreId') or ['default'])[0]}"
        if collection in ("executions", "artifacts"):  # none are kept: only an (empty) list is served
            if context_id is None and method == "GET":
                return self._listed(collection, [], query)
            return error_reply(404, "NOT_FOUND", f"no such resource: {method} {path}")
        if collection is None:
            if method == "POST":  # create: a long-running operation that is done at once
                resource = {"name": store_name, "createTime": rfc3339()}
                return 200, {
                    "name": f"{store_name}/operations/1",
                    "done": True,
                    "response": {"@type": "type.googleapis.com/google.cloud.aiplatform.v1.MetadataStore", **resource},
                }
            return 200, {"name": store_name, "createTime": rfc3339()}
        if context_id is None:
            if method == "POST":
                return self._create(store_name, next(iter(query.get("contextId") or []), None), body or {})
            with self._lock:
                found = [dict(c) for n, c in self.contexts.items() if n.startswith(store_name + "/")]
            return self._listed("contexts", found, query)
        name = f"{store_name}/contexts/{context_id}"
        with self._lock:
            context = self.contexts.get(name)
        if context is None:
            return error_reply(404, "NOT_FOUND", f"Context {name} not found")
        if verb == ":addContextChildren":
            with self._lock:
                kids = self.children.setdefault(name, [])
                kids.extend(c for c in (body or {}).get("childContexts", []) if c not in kids)
                for child in (body or {}).get("childContexts", []):
                    if child in self.contexts:
                        self.contexts[child].setdefault("parentContexts", []).append(name)
                self._save()
            return 200, {}
        if method == "PATCH":
            with self._lock:
                context.update({k: v for k, v in (body or {}).items() if k != "name"}, updateTime=rfc3339())
                self._save()
            return 200, context
        return 200, context

    def _create(self, store: str, context_id: Optional[str], body: Dict[str, Any]) -> Reply:
        context_id = context_id or f"context-{int(time.time() * 1000)}"
        created = self.create(store, context_id, body)
        if created is None:
            return error_reply(409, "ALREADY_EXISTS", f"Context {store}/contexts/{context_id} already exists")
        return 200, created

    def create(self, store: str, context_id: str, body: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        """A new context (None if it exists): an experiment's, or a PipelineJob's run."""
        name = f"{store}/contexts/{context_id}"
        with self._lock:
            if name in self.contexts:
                return None
            self.contexts[name] = {**body, "name": name, "createTime": rfc3339(), "updateTime": rfc3339(), "etag": "1"}
            self._save()
            return dict(self.contexts[name])

    @staticmethod
    def _listed(collection: str, found: List[Dict[str, Any]], query: Mapping[str, List[str]]) -> Reply:
        """The resources the request's `filter` matches, in one page (a filter it does not
        understand is refused: see metadata_filter)."""
        try:
            wanted = parse((query.get("filter") or [""])[0])
        except FilterError as e:
            return error_reply(400, "INVALID_ARGUMENT", str(e))
        return 200, {collection: [r for r in found if wanted(r)]}
