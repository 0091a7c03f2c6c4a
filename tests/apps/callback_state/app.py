"""An app whose callback keeps state from `on_multirun_start`."""

import os

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path=None)
def main(cfg: DictConfig) -> int:
    print(f"launched by {os.getppid()}")
    return int(cfg.x)


if __name__ == "__main__":
    main()
