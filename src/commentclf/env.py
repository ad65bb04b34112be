"""The process environment every stage, test and command runs under: the offline variables, and two library
warnings that are false here, silenced by message on the logger that emits them (nothing else is hidden)."""

import logging
import os
import sys

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


# (logger, start of the message, why it is false here)
FALSE_WARNINGS = [
    (
        # transformers 4.57.3 to 4.x flags every local folder whose config.json was saved by those versions as a
        # Mistral tokenizer with a broken pre-tokenizer regex (the model type is only checked for older
        # configs). Our folders hold e5's Unigram and SmolLM2's BPE tokenizers, which have no such regex; the
        # suggested `fix_mistral_regex=True` would replace their pre-tokenizer with Mistral's and break them.
        "transformers.tokenization_utils_base",
        "The tokenizer you are loading from",
    ),
    (
        # On CPUs with AVX512-BF16, bitsandbytes tries at import to download an optional 4-bit kernel from the
        # model hub (the `kernels` package, then kernels-community on the hub), which this offline project never
        # reaches; it then uses its own built-in CPU kernel, as on every other CPU. Nothing is missing.
        "bitsandbytes.backends.cpu.ops",
        "Failed to load CPU gemm_4bit_forward",
    ),
]


class _DropMessage(logging.Filter):
    def __init__(self, start: str):
        super().__init__()
        self.start = start

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.start)


def set_offline_env() -> None:
    """Set the offline variables unless the user already chose a value (e.g. HF_HUB_OFFLINE=0 on a GPU box),
    and drop the false warnings above."""
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    for name, start in FALSE_WARNINGS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropMessage) and f.start == start for f in logger.filters):
            logger.addFilter(_DropMessage(start))


if __name__ == "__main__":  # the variables as KEY=VALUE words, for the Makefile (one list, here)
    sys.stdout.write(" ".join(f"{key}={value}" for key, value in OFFLINE_ENV.items()) + "\n")
