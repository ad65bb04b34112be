"""commentclf: from a few hundred labelled comments and a large unlabelled pool to a deployable classifier.

The package reads like the pipeline; each phase imports only the phases below it (an import-linter
contract in pyproject.toml, run by `make test`):

* `assets/`     — the base models out of PyPI wheels (stage `assets`);
* `llm/`        — the fine-tuned LLM and its synthetic comments (`synth_gen`, `llm_finetune`);
* `teachers/`   — SetFit, the cheap teachers and their ensemble, which label the pool (`setfit`, `llm_label`);
* `student/`    — the e5 student, trained and exported to ONNX (`seed_only`, `e5_train`, `onnx_export`);
* `annotation/` — what to label next, Label Studio both ways (`suggest`, `commentclf annotations`);
* `inference/`  — the deployed student: streamed `predict`, `serve`, the Ray engine's predict;
* `evaluation/` — the benchmark, saved runs and reports (`benchmark`, `scripts/report.py`);
* `cli`         — the `commentclf` command, above every phase.

Shared by every phase, at the top level: `config` (the typed params schema), `profiles`, `data` (reading,
validating and splitting), `errors`, `env`, `files`, `metrics`, `seeding`, `stage` (how a stage script runs),
`tracking` (DVCLive curves and confusion matrices) and `ray_engine` (Ray Data mechanics for the two jobs that
run on it).

Importing the package sets the offline environment first, so that no stage, test or command ever waits
on a model hub that this project never needs (every default model is built from a PyPI wheel).
"""

from commentclf.env import set_offline_env

set_offline_env()

__version__ = "0.1.0"
