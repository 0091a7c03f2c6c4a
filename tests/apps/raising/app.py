"""Fails on demand, for tests of what a failing trial leaves behind."""

import hydra
from omegaconf import DictConfig


class Unserializable:
    def __repr__(self) -> str:
        return "<Unserializable>"


@hydra.main(version_base="1.3", config_path=None)
def main(cfg: DictConfig):
    if cfg.get("fail"):
        raise RuntimeError(f"trial failed on purpose: {cfg.fail}")
    if cfg.get("odd"):
        return {"model": Unserializable(), "score": 1.5}
    return {"score": 1.5, "per_class": [0.5, 0.75], "cfg": cfg}


if __name__ == "__main__":
    main()
