"""A preemption-safe trainer: checkpoints on SIGTERM and resumes from `AIP_CHECKPOINT_DIR`.

On Vertex, `AIP_CHECKPOINT_DIR` is a gs:// URI under the job's base_output_directory (a
trial's own folder, kept by a resumed sweep), read and written through Cloud Storage FUSE
at `/gcs/BUCKET/...`. A Spot VM's preemption reaches the container as SIGTERM, then SIGKILL
after a grace: on SIGTERM this trainer saves its state and exits; on start it resumes
from the latest checkpoint there. Full-batch gradient descent on fixed data, so a resumed
run returns exactly what an uninterrupted one does. Standard library only.
"""

import json
import logging
import os
import random
import signal
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

import hydra
from omegaconf import DictConfig

log = logging.getLogger(__name__)
LATEST = "latest.json"


def checkpoint_dir() -> Path:
    """AIP_CHECKPOINT_DIR through its /gcs/ path; outside Vertex, ./checkpoints."""
    uri = os.environ.get("AIP_CHECKPOINT_DIR", "")
    return Path(uri.replace("gs://", "/gcs/", 1)) if uri.startswith("gs://") else Path("checkpoints").resolve()


def load(folder: Path) -> Dict[str, Any]:
    try:
        return json.loads((folder / LATEST).read_text())
    except FileNotFoundError:
        return {"step": 0, "w": 0.0, "b": 0.0, "starts": []}


def save(folder: Path, state: Dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (LATEST + ".tmp")
    tmp.write_text(json.dumps(state))
    os.replace(tmp, folder / LATEST)  # a preemption mid-write leaves the previous checkpoint whole


def make_data(seed: int) -> List[Tuple[float, float]]:
    rng = random.Random(seed)
    return [(x, 3 * x + 1 + rng.gauss(0, 0.1)) for x in (rng.uniform(-1, 1) for _ in range(256))]


def step(w: float, b: float, lr: float, data: List[Tuple[float, float]]) -> Tuple[float, float]:
    gw = sum(2 * (w * x + b - y) * x for x, y in data) / len(data)
    gb = sum(2 * (w * x + b - y) for x, y in data) / len(data)
    return w - lr * gw, b - lr * gb


def loss(w: float, b: float, data: List[Tuple[float, float]]) -> float:
    return sum((w * x + b - y) ** 2 for x, y in data) / len(data)


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    stop = {"asked": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(asked=True))
    folder = checkpoint_dir()
    state = load(folder)
    state["starts"] = [*state["starts"], state["step"]]
    if state["step"]:
        log.info(f"resumed from step {state['step']} ({folder / LATEST})")
    data = make_data(cfg.seed)
    while state["step"] < cfg.steps:
        if stop["asked"]:
            save(folder, state)
            log.info(f"SIGTERM: checkpoint of step {state['step']} saved; exiting")
            logging.shutdown()
            os._exit(128 + signal.SIGTERM)  # as a process ended by SIGTERM
        state["w"], state["b"] = step(state["w"], state["b"], cfg.lr, data)
        state["step"] += 1
        if state["step"] % cfg.checkpoint_every == 0:
            save(folder, state)
        time.sleep(cfg.step_seconds)
    save(folder, state)
    value = loss(state["w"], state["b"], data)
    log.info(f"lr={cfg.lr} steps={cfg.steps} loss={value:.6f} (started at steps {state['starts']})")
    return value


if __name__ == "__main__":
    main()
