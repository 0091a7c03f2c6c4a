"""A stand-in for training: returns a loss that depends on the swept settings."""

import math

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    loss = abs(math.log10(cfg.lr) + 2) + 32 / cfg.batch_size
    print(f"lr={cfg.lr} batch_size={cfg.batch_size} loss={loss:.4f}")
    return loss


if __name__ == "__main__":
    main()
