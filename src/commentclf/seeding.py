"""Determinism: one call that seeds every random number generator a stage may touch, and the fix-up that
gives a saved model the same bytes in every process."""

import json
import random
from pathlib import Path

import numpy as np


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def canonical_json(path: str | Path, sorted_lists: tuple[str, ...] = ()) -> None:
    """Rewrite a JSON file that a library wrote from a Python set (peft's `target_modules`, setfit's config
    keys): set order follows the process's string hash seed, so the same model got other bytes, hence
    another DVC hash and needless downstream reruns, on every run. Keys are sorted, and so are the
    top-level lists named in `sorted_lists` (only lists whose order means nothing)."""
    path = Path(path)
    data = json.loads(path.read_text())
    for key in sorted_lists:
        if isinstance(data.get(key), list):
            data[key] = sorted(data[key])
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
