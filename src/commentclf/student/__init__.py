"""The student: the small e5 classifier distilled from the teachers, and its deployable ONNX form
(`seed_only`, `e5_train`, `onnx_export`).

* `model`       — `MeanPoolingClassifier`, `load_student`, `predict_proba` (torch);
* `train`       — `TrainingSet` -> `StudentRun`: fine-tuning, the frozen-embedding head, self-training;
* `distill`     — the e5_train recipe: the training set from seed + pseudo-labels, the configured run;
* `vocab`       — trimming the tokenizer and embedding table to the corpus's tokens;
* `onnx_export` — fp32 export, graph optimisation, int8 schemes, the parity gate;
* `onnx_model`  — `OnnxClassifier`: the exported student at inference time (onnxruntime, no torch).
"""
