"""The exported student at inference time: an onnxruntime session and its tokenizer, used by the benchmark,
`commentclf predict` and `commentclf serve`.

Only onnxruntime, `tokenizers` and numpy are imported: transformers would pull in torch, which a deployed
model never runs (it multiplies `serve`'s start-up time and resident memory). The folder's tokenizer.json is
the same fast tokenizer transformers would load; padding and truncation are set here as its call would."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from commentclf.conformal import ConformalSets
from commentclf.errors import DataError

CALIBRATION = "calibration.json"
"""Beside the model file: {"method", "temperature", "conformal", ...}, written by onnx_export (`onnx.calibrate`;
"conformal": the calib rows' scores behind the prediction sets, commentclf.conformal)."""


class OnnxClassifier:
    """onnxruntime session + tokenizer; `predict_proba(texts)` like the torch student.

    `threads`: onnxruntime's threads within one model call (None: its default, one per core). `workers`: model
    calls run at once by `predict_proba`, each from its own Python thread (onnxruntime and the tokenizer release
    the GIL) on `threads` threads (default 1). At one text per call a call is too small to keep two threads
    busy; two calls at once do, with the same answers (each text is still alone)."""

    def __init__(
        self,
        path: str | Path,
        threads: int | None = None,
        max_length: int = 512,
        prefix: str = "query: ",
        workers: int = 1,
        calibrated: bool = True,
    ):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        path = Path(path)
        folder = path.parent if path.suffix == ".onnx" else path
        file = path if path.suffix == ".onnx" else next(p for p in sorted(folder.glob("*.onnx")))
        options = ort.SessionOptions()
        if workers > 1:
            threads = threads or 1
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        pad = json.loads((folder / "tokenizer_config.json").read_text()).get("pad_token", "<pad>")
        pad = pad["content"] if isinstance(pad, dict) else pad
        self.tokenizer.enable_truncation(max_length)
        self.tokenizer.enable_padding(pad_id=self.tokenizer.token_to_id(pad), pad_token=pad)
        id2label = json.loads((folder / "config.json").read_text())["id2label"]
        self.labels = [id2label[str(i)] for i in range(len(id2label))]
        self.max_length = max_length
        self.prefix = prefix
        self.file = file
        self.workers = workers
        # the temperature onnx_export fitted on the calib rows (calibration.json); 1 without one, or when asked raw
        calibration = folder / CALIBRATION
        self.calibration = calibration if calibration.is_file() else None
        shipped = json.loads(calibration.read_text()) if calibration.is_file() and calibrated else {}
        self.temperature = shipped.get("temperature", 1.0)
        # fitted on calibrated scores, so offered only with them
        self.conformal = None
        if "conformal" in shipped:
            self.conformal = ConformalSets.from_dict(shipped["conformal"], len(self.labels))

    @property
    def version(self) -> str:
        """Which model answers: the content hash of the model file and of its calibration."""
        from commentclf.files import model_version

        return model_version(self.file, *([self.calibration] if self.calibration else []))

    def encode(self, texts: list[str]) -> dict[str, np.ndarray]:
        """The model's inputs for `texts`: ids, attention mask (and token types where the graph takes them)."""
        encodings = self.tokenizer.encode_batch([self.prefix + t for t in texts])
        feed = {
            "input_ids": [e.ids for e in encodings],
            "attention_mask": [e.attention_mask for e in encodings],
            "token_type_ids": [e.type_ids for e in encodings],
        }
        return {k: np.array(v, dtype=np.int64) for k, v in feed.items() if k in self.inputs}

    def predict_proba(self, texts: list[str], batch_size: int = 1) -> np.ndarray:
        """Probabilities per text. One text per call by default: the int8 kernels quantise a call's
        activations with one scale, so in a batch a text's answer depends on its batch-mates (and on their
        padding); alone, every caller (`predict`, `serve`, the parity gate) gets the same answer, and on
        CPU it is as fast as a batch of unsorted texts (docs/design.md)."""
        batches = [texts[start : start + batch_size] for start in range(0, len(texts), batch_size)]
        if not batches:
            return np.zeros((0, len(self.labels)))
        if self.workers > 1 and len(batches) > 1:
            with ThreadPoolExecutor(self.workers) as pool:  # map keeps the batches' order
                return np.concatenate(list(pool.map(self._proba, batches)))
        return np.concatenate([self._proba(batch) for batch in batches])

    def prediction_sets(self, proba: np.ndarray, alpha: float) -> np.ndarray:
        """(rows, labels) booleans: each row's conformal set at miscoverage `alpha` (commentclf.conformal)."""
        if self.conformal is None:
            raise DataError(
                f"{self.file.parent}: no conformal calibration in {CALIBRATION} (exported before it existed, or "
                "loaded uncalibrated); run `dvc repro onnx_export`"
            )
        return self.conformal.sets(proba, alpha)

    def _proba(self, texts: list[str]) -> np.ndarray:
        logits = self.session.run(["logits"], self.encode(texts))[0].astype(np.float64) / self.temperature
        logits -= logits.max(1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(1, keepdims=True)
