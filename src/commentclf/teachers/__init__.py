"""The teachers: the models that label the pool, and the ensemble that pools them (`setfit`,
`llm_label`).

* `cheap`       — the cross-fitted cheap teachers (logreg and label spreading on e5 embeddings, tf-idf);
* `setfit`      — SetFit: train, load, probabilities;
* `scoring`     — `RowScorer`: the row-by-row work of llm_label (embeddings, SetFit and LLM probabilities);
* `server`      — `ServerTeacher`: an LLM behind any OpenAI-compatible server, its answers cached (`llm_server`);
* `ray_scoring` — the same scoring on Ray actors (`label.engine: ray`);
* `ensemble`    — `Ensemble`: each teacher's calibration, the pool weights, the prior correction;
* `labelling`   — `label_pool`: the llm_label stage's work, from the scored rows to the pseudo-labels.
* `recipe`      — `Recipe`, `choose_recipe`: how the student learns from the pool, chosen on the seed.
"""
