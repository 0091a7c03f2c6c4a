"""Returns a non-finite value (`kind`: plus_inf, nan_dict or minus_inf); its sweeper
(hydra_plugins/recording_sweeper) keeps what the launcher returned."""

import hydra
from omegaconf import DictConfig

VALUES = {"plus_inf": lambda: float("inf"), "nan_dict": lambda: {"v": float("nan")}, "minus_inf": lambda: float("-inf")}


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> object:
    return VALUES[cfg.kind]()


if __name__ == "__main__":
    main()
