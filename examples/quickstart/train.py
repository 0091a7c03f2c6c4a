"""A tiny training run: fits y = 3x + 1 with mini-batch SGD and returns the final loss.

Standard library only, so it runs anywhere the launcher does.
"""

import logging
import random

import hydra
from omegaconf import DictConfig

log = logging.getLogger(__name__)


def make_data(n: int, seed: int) -> list:
    rng = random.Random(seed)
    xs = [rng.uniform(-1, 1) for _ in range(n)]
    return [(x, 3 * x + 1 + rng.gauss(0, 0.1)) for x in xs]


def train(lr: float, batch_size: int, epochs: int, seed: int) -> float:
    data = make_data(512, seed)
    w, b = 0.0, 0.0
    rng = random.Random(seed + 1)
    for _ in range(epochs):
        rng.shuffle(data)
        for i in range(0, len(data), batch_size):
            batch = data[i : i + batch_size]
            gw = sum(2 * (w * x + b - y) * x for x, y in batch) / len(batch)
            gb = sum(2 * (w * x + b - y) for x, y in batch) / len(batch)
            w, b = w - lr * gw, b - lr * gb
    return sum((w * x + b - y) ** 2 for x, y in data) / len(data)


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    loss = train(cfg.lr, cfg.batch_size, cfg.epochs, cfg.seed)
    log.info(f"lr={cfg.lr} batch_size={cfg.batch_size} loss={loss:.5f}")
    return loss


if __name__ == "__main__":
    main()
