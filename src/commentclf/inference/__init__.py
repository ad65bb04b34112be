"""Inference: the deployed ONNX student answering users (`commentclf predict`, `commentclf serve`).

* `streaming`   — `predict_file`: a file of any size, in parts, resumable after a crash;
* `ray_predict` — `predict_file_ray`: the same parts labelled on Ray actors (`--engine ray`);
* `serve`       — the FastAPI service; `python -m commentclf.inference.serve` runs it on its own.
"""
