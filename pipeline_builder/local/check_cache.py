"""Verdicts of the CustomJob check (gcpc_check), kept on disk so that an unchanged sweep run
again starts no helper.

gcpc's launcher code and aiplatform's CustomJob proto take about 0.4 s of CPU to import, and
their verdict on a payload depends only on the payload, the run's system labels and the
installed gcpc, aiplatform, protobuf and kfp (and the check's own code). A re-run of the
same sweep differs from the first run only in values that gcpc passes through as opaque
text: the run id (in display names, arguments, labels, output folders), the sweep dir, the
run's work folder, the billing label's value and the CustomJob id. Those are replaced by
placeholders before the payload is hashed and before a verdict is stored, and put back
when a stored verdict is used, so a hit gives exactly the job (or the refusal) the helper
would have given; any other change to a trial's payload is a miss, and that trial is
checked again.

The cache lives in `$XDG_CACHE_HOME/hydra-vertex-pipelines-launcher/custom-job-checks/`
(`~/.cache/...` without it), one file per verdict, written atomically;
`HYDRA_VERTEX_CHECK_CACHE=0` turns it off.
"""

import hashlib
import json
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ..user_cache import cache_path, installed, read_entry, replaced, turned_off, write_entry

SWITCH = "HYDRA_VERTEX_CHECK_CACHE"  # "0": no cache
# A shorter value could also be part of text that gcpc writes itself ("Jobs"), which a
# placeholder would then stand for too: such values stay in the key as they are.
MIN_VOLATILE = 8
_DISTRIBUTIONS = ("google-cloud-pipeline-components", "google-cloud-aiplatform", "protobuf", "kfp")
_versions: Optional[str] = None


def cache_folder() -> Optional[Path]:
    """Where verdicts are kept, or None when the cache is turned off."""
    return None if turned_off(SWITCH) else cache_path("custom-job-checks")


def installed_versions() -> str:
    """What a verdict depends on besides the payload: the installed packages whose code
    makes it, the check's own code, and the Python version."""
    global _versions
    if _versions is None:
        found = installed(_DISTRIBUTIONS)
        check_code = Path(__file__).with_name("gcpc_check.py").read_bytes()
        found["gcpc_check"] = hashlib.sha256(check_code).hexdigest()
        _versions = json.dumps(found, sort_keys=True)
    return _versions


class CheckCache:
    """The verdicts of one run's checks. `volatile` are the run's own values (run id, sweep
    dir, work folder) that differ between two runs of the same sweep; `sweep` names the
    sweep (its trials with those values taken out), so that a run can tell before it
    starts whether its checks are likely all stored (`expects_hits`)."""

    def __init__(self, folder: Path, volatile: Sequence[str], sweep: str = "") -> None:
        self.folder = Path(folder)
        self.volatile = [v for v in volatile if v]
        self.sweep = sweep
        self.hits = 0
        self.misses = 0

    def _pairs(self, labels: Mapping[str, str], job_id: str) -> List[Tuple[str, str]]:
        """(value, placeholder), longest value first, so that no value is cut by a shorter one."""
        values = {f"\x00volatile:{i}\x00": v for i, v in enumerate(self.volatile)}
        values.update({f"\x00label:{k}\x00": v for k, v in sorted(labels.items()) if v})
        values["\x00job-id\x00"] = job_id
        return sorted(((v, k) for k, v in values.items() if len(v) >= MIN_VOLATILE), key=lambda p: -len(p[0]))

    def _path(self, argv: Sequence[str], labels: Mapping[str, str], job_id: str) -> Path:
        pairs = self._pairs(labels, job_id)
        shape = {"argv": replaced(list(argv), pairs), "labels": replaced(dict(labels), pairs)}
        text = json.dumps([shape, installed_versions()], sort_keys=True)
        return self.folder / f"{hashlib.sha256(text.encode()).hexdigest()}.json"

    def get(self, argv: Sequence[str], labels: Mapping[str, str], job_id: str) -> Optional[Dict[str, Any]]:
        """The stored reply for this check ({"name", "job"} or {"error"}), as this run's
        values make it; None if none is stored (or it cannot be read)."""
        try:
            stored = json.loads(read_entry(self._path(argv, labels, job_id)) or "null")
        except ValueError:
            stored = None
        if not isinstance(stored, dict) or not ({"error"} <= stored.keys() or {"name", "job"} <= stored.keys()):
            self.misses += 1
            return None
        self.hits += 1
        back = [(placeholder, value) for value, placeholder in self._pairs(labels, job_id)]
        return dict(replaced(stored, back))

    def put(self, argv: Sequence[str], labels: Mapping[str, str], job_id: str, reply: Mapping[str, Any]) -> None:
        """Stores the helper's reply; a cache that cannot be written is only slower."""
        kept = {k: reply[k] for k in ("name", "job", "error") if k in reply}
        pairs = self._pairs(labels, job_id)
        stored = replaced(kept, pairs)
        if replaced(stored, [(new, old) for old, new in pairs]) != kept:
            return  # a placeholder's text was in the reply already: it would not come back the same
        write_entry(self.folder, self._path(argv, labels, job_id), json.dumps(stored))

    def _sweep_marker(self) -> Optional[Path]:
        if not self.sweep:
            return None
        digest = hashlib.sha256(json.dumps([self.sweep, installed_versions()]).encode()).hexdigest()
        return self.folder / "sweeps" / digest

    def expects_hits(self) -> bool:
        """Whether this sweep's checks were all stored by an earlier run (then the helper is
        started only if a check misses after all)."""
        marker = self._sweep_marker()
        return marker is not None and read_entry(marker) is not None

    def remember_sweep(self) -> None:
        """Notes that every check of this sweep is stored."""
        marker = self._sweep_marker()
        if marker is not None and (self.hits or self.misses):
            write_entry(self.folder, marker, "")


def sweep_signature(trial_inputs: Sequence[Mapping[str, Any]], volatile: Sequence[str]) -> str:
    """What names a sweep across its runs: a digest of its trials' CustomJob inputs with
    the run's own values (`volatile`) taken out."""
    found = enumerate(volatile)
    pairs = sorted(((v, f"\x00volatile:{i}\x00") for i, v in found if len(v) >= MIN_VOLATILE), key=lambda p: -len(p[0]))
    text = json.dumps(replaced([dict(t) for t in trial_inputs], pairs), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()
