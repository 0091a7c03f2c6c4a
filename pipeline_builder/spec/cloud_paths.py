"""Cloud Storage paths: the gs:// URI, its /gcs/ FUSE twin, and where both live locally."""

import os
import re
from typing import Any, Dict, Mapping, Optional

from hydra_vertex_pipelines.components.sweep_files import FUSE, GCS

# A cloud path starts an argument or follows `=` (as in `hydra.run.dir=/gcs/...`), maybe
# inside quotes (`hydra.run.dir='/gcs/b/a=1,b=2'`).
_CLOUD_PATH = re.compile(f"(^|=)['\"]?({re.escape(GCS)}|{re.escape(FUSE)})")


class PathMap:
    """Maps gs://BUCKET/... and /gcs/BUCKET/... to local folders, longest prefix first.

    `prefixes` maps a gs:// prefix to a local folder (the launcher maps a run's folder to
    the Hydra sweep dir); anything else lands under `root/BUCKET/...`.
    """

    def __init__(self, root: str, prefixes: Optional[Mapping[str, str]] = None) -> None:
        self.root = os.path.abspath(root)
        self.prefixes: Dict[str, str] = {k.rstrip("/"): os.path.abspath(v) for k, v in dict(prefixes or {}).items()}

    def local(self, path: str) -> str:
        """The local path of a gs:// or /gcs/ path; other paths are returned unchanged."""
        if path.startswith(FUSE):
            path = GCS + path[len(FUSE) :]
        if not path.startswith(GCS):
            return path
        for prefix in sorted(self.prefixes, key=len, reverse=True):
            if path == prefix or path.startswith(prefix + "/"):
                return self.prefixes[prefix] + path[len(prefix) :]
        return os.path.join(self.root, path[len(GCS) :])

    def in_text(self, text: str) -> str:
        """`text` with a leading cloud path, or one after `=`, made local; a closing quote stays."""
        match = _CLOUD_PATH.search(text)
        if match is None:
            return text
        start = match.start(2)
        return text[:start] + self.local(text[start:])

    def in_value(self, value: Any) -> Any:
        """Maps every string inside lists and dicts."""
        if isinstance(value, str):
            return self.in_text(value)
        if isinstance(value, list):
            return [self.in_value(v) for v in value]
        if isinstance(value, dict):
            return {k: self.in_value(v) for k, v in value.items()}
        return value
