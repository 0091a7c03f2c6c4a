"""Misbehaves on demand: raises, dies, exits, hangs, spoils its result, or fails until fixed, depending on `x`;
with `+catch_sigterm=true`, turns a SIGTERM into an exception (a FAILED record), as some trainers do."""

import os
import signal
import sys
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig


def _raise_on_sigterm(signum: int, frame: object) -> None:
    raise RuntimeError("stopped by SIGTERM")


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    print(f"trial x={cfg.x} pid={os.getpid()}", flush=True)
    if cfg.get("catch_sigterm"):
        signal.signal(signal.SIGTERM, _raise_on_sigterm)
    if cfg.x == "raise":
        raise ValueError("bad x")
    if cfg.x == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    if cfg.x == "exit3":
        print("giving up", flush=True)
        os._exit(3)
    if cfg.x == "broken" and not Path(cfg.fixed_by).exists():  # until the "fix" (a file) exists
        raise RuntimeError("not fixed yet")
    if cfg.x == "broken":
        return -1.0
    if cfg.x == "listresult":  # after the trial wrote its .vertex/result.json, replace it with a JSON list
        import atexit

        from hydra.core.hydra_config import HydraConfig

        from hydra_vertex_pipelines.components.sweep_files import TrialFiles

        path = TrialFiles(Path(HydraConfig.get().runtime.output_dir)).result
        atexit.register(lambda: path.write_text("[1, 2]"))
        return 7.0
    if cfg.x == "hang":
        Path(os.environ["PID_DIR"], str(os.getpid())).write_text("")
        time.sleep(600)
    time.sleep(cfg.get("sleep", 0))
    return float(cfg.x)


if __name__ == "__main__":
    sys.exit(main())
