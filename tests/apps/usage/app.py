"""Runs for a moment on the machines its config names; `fail=true` raises after that."""

import time

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    time.sleep(cfg.sleep)
    if cfg.fail:
        raise RuntimeError("failed after running")
    return float(cfg.replicas)


if __name__ == "__main__":
    main()
