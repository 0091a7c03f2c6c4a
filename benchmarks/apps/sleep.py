"""A trial that only sleeps: measures what a launcher adds around the work."""

import time

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path=None)
def main(cfg: DictConfig) -> int:
    time.sleep(float(cfg.get("sleep", 1.0)))
    return int(cfg.get("i", 0))


if __name__ == "__main__":
    main()
