"""The cheapest trial: writes its result.json at once, without Hydra (for request counts)."""

import json
import os
import sys

run_dir = next(a.split("=", 1)[1] for a in sys.argv if a.startswith("hydra.run.dir="))
number = int(next(a.split("=", 1)[1] for a in sys.argv if a.startswith("hydra.job.num=")))
os.makedirs(run_dir, exist_ok=True)
with open(os.path.join(run_dir, "result.json"), "w") as f:
    json.dump({"status": "COMPLETED", "return_value": number * 2}, f)
