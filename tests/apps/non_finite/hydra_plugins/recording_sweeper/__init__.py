"""A sweeper that keeps what the launcher returned: the basic sweeper, which also pickles
the return value of every JobReturn to $RETURNS_FILE."""

import os
import pickle
from typing import Any, List

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper


class RecordingSweeper(BasicSweeper):
    def sweep(self, arguments: List[str]) -> Any:
        batches = super().sweep(arguments)
        values = [r.return_value for batch in batches for r in batch]
        with open(os.environ["RETURNS_FILE"], "wb") as f:
            pickle.dump(values, f)
        return batches
