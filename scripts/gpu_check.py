"""GPU path check (run by hand on a CUDA machine, never in CI): fine-tune the SmolLM2 asset with the
unsloth backend in 4-bit (QLoRA), then load the adapter under the peft backend and score dev.

    pip install -e '.[gpu]'          # CUDA hosts only: the gpu extra pulls torchvision
    dvc repro split assets           # models/base/llm and data/split
    python scripts/gpu_check.py      # ~5 minutes on one GPU

Prints one JSON line: backend, train time, steps, losses, dev macro-F1 of the peft-loaded adapter.
"""

import json
import sys
import time
from pathlib import Path

import torch

if not torch.cuda.is_available():
    sys.exit("gpu_check: no CUDA device; this script checks the GPU path only")

from commentclf.llm import choose_backend, import_unsloth_first  # noqa: E402

backend = choose_backend("unsloth")
import_unsloth_first()

from commentclf.config import load_params  # noqa: E402
from commentclf.data import read_split  # noqa: E402
from commentclf.llm import LLMClassifier, TrainSettings, balance, finetune  # noqa: E402
from commentclf.metrics import classification_report  # noqa: E402
from commentclf.prompts import classification_prompt  # noqa: E402

cfg = load_params("params.yaml")
train, dev = read_split("train"), read_split("dev")
texts, labels = balance(train.text.tolist(), train.label.tolist(), cfg.seed)
prompt = classification_prompt(cfg.labels, cfg.language, cfg.context)
s = cfg.llm
settings = TrainSettings(
    s.lora_r, s.lora_alpha, s.lora_dropout, s.target_modules, 2e-4, 1, 2, 4, s.max_length, 0.05, "4bit", cfg.seed
)
out = Path("models/llm_gpu_check")
start = time.perf_counter()
info = finetune("models/base/llm", backend, texts, labels, cfg.label_names, prompt, settings, out)
clf = LLMClassifier.load(out, "models/base/llm", quantize="none")  # peft backend reads the unsloth adapter
proba = clf.score(dev.text.tolist(), batch_size=16)
report = classification_report(
    dev.label.tolist(), [cfg.label_names[i] for i in proba.argmax(1)], cfg.label_names, cfg.minority_label
)
print(
    json.dumps(
        {
            "backend": backend,
            "device": torch.cuda.get_device_name(),
            **info,
            "wall_seconds": round(time.perf_counter() - start, 1),
            "dev_macro_f1_peft_loaded": report["macro_f1"],
        }
    )
)
