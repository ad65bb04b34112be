"""The process environment every stage, test and command runs under."""

import os

# Without these, transformers / huggingface_hub retry the hub for ~70 s before failing, trl and dvc
# send telemetry, and the tokenizers thread pool warns (or deadlocks) after a fork.
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DVC_NO_ANALYTICS": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def set_offline_env() -> None:
    """Set the offline variables unless the user already chose a value (e.g. HF_HUB_OFFLINE=0 on a GPU box)."""
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
