"""The exported student at inference time: an onnxruntime session and its tokenizer, used by the benchmark,
`commentclf predict` and `commentclf serve`."""

from __future__ import annotations

from pathlib import Path

import numpy as np


class OnnxClassifier:
    """onnxruntime session + tokenizer; `predict_proba(texts)` like the torch student."""

    def __init__(self, path: str | Path, threads: int | None = None, max_length: int = 512, prefix: str = "query: "):
        import onnxruntime as ort
        from transformers import AutoConfig, AutoTokenizer

        path = Path(path)
        folder = path.parent if path.suffix == ".onnx" else path
        file = path if path.suffix == ".onnx" else next(p for p in sorted(folder.glob("*.onnx")))
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        config = AutoConfig.from_pretrained(folder)
        self.labels = [config.id2label[i] for i in range(config.num_labels)]
        self.max_length = max_length
        self.prefix = prefix
        self.file = file

    def predict_proba(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        out = []
        for start in range(0, len(texts), batch_size):
            enc = self.tokenizer(
                [self.prefix + t for t in texts[start : start + batch_size]],
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="np",
            )
            feed = {k: v.astype(np.int64) for k, v in enc.items() if k in self.inputs}
            logits = self.session.run(["logits"], feed)[0].astype(np.float64)
            logits -= logits.max(1, keepdims=True)
            p = np.exp(logits)
            out.append(p / p.sum(1, keepdims=True))
        return np.concatenate(out) if out else np.zeros((0, len(self.labels)))
