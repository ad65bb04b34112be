"""The LLM classifier: LoRA/QLoRA fine-tuning of a causal LM that answers `{"label": "<word>"}`, and its two
prediction modes (`generate`, `score`). One module per concern:

* `backend`    — unsloth or peft + trl, and loading the base model (fp32 / bf16 / 4-bit);
* `tokens`     — the prompt and the label answers as token ids, the same for training and prediction;
* `train`      — oversampling and the LoRA fine-tune (only the adapter is saved);
* `attention`  — the attention function that lets `score` attend comment by comment in a packed row;
* `classifier` — `LLMClassifier`: load an adapter, `generate` and `score`;
* `evaluate`   — both modes side by side on labelled rows.
"""
