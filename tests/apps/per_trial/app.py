"""An app whose launcher settings differ per trial, read from the composed config."""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> str:
    return f"{cfg.model.name}:{cfg.lr}"


if __name__ == "__main__":
    main()
