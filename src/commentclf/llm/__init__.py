"""The LLM: LoRA/QLoRA fine-tuning of a causal LM that answers `{"label": "<word>"}`, its two
prediction modes (`generate`, `score`), and the synthetic comments it writes. One module per concern:

* `prompts`    — the classification and generation prompts (per `language`), and the answer words;
* `parsing`    — reading the LLM's answers (a label, a list of comments), counting what does not parse;
* `backend`    — unsloth or peft + trl, and loading the base model (fp32 / bf16 / 4-bit);
* `tokens`     — the prompt and the label answers as token ids, the same for training and prediction;
* `train`      — oversampling and the LoRA fine-tune (only the adapter is saved);
* `head`       — the alternative classifier head on the LLM (`llm.head`), and `load_llm` for either;
* `attention`  — the attention function that lets `score` attend comment by comment in a packed row;
* `classifier` — `LLMClassifier`: load an adapter, `generate` and `score`;
* `evaluate`   — both modes side by side on labelled rows;
* `synth`      — `synth_gen`: the LLM writes comments per label from real ones, filtered, rejections counted.
"""
