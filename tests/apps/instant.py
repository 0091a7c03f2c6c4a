"""The cheapest trial: writes its result.json at once, without Hydra (for request counts)."""

import json
import os

from hydra_plugins.vertex_pipelines_launcher.trial_entry import running

assert running is not None, "run me through the trial entry"
run_dir = os.path.join(running.sweep_dir, str(running.num))
os.makedirs(run_dir, exist_ok=True)
with open(os.path.join(run_dir, "result.json"), "w") as f:
    json.dump({"status": "COMPLETED", "return_value": running.num * 2, "run_id": running.run_id, "number": running.num}, f)
