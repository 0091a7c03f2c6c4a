"""The cheapest trial: writes its .vertex/result.json at once, without Hydra (for request counts)."""

import json
import os

from hydra_plugins.vertex_pipelines_launcher.trial_entry import running
from hydra_vertex_pipelines.components.sweep_files import TrialFiles

assert running is not None, "run me through the trial entry"
result = TrialFiles(os.path.join(running.sweep_dir, str(running.num))).result
os.makedirs(os.path.dirname(result), exist_ok=True)
with open(result, "w") as f:
    json.dump({"status": "COMPLETED", "return_value": running.num * 2, "run_id": running.run_id, "number": running.num}, f)
