"""Few-shot baseline: SetFit (contrastive fine-tuning of a sentence-transformer body + a logistic head).

The head is a class-balanced LogisticRegression because the minority label is rare; its regularisation C is
picked on dev (the only model selection this stage does), never on test.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from commentclf.config import SetFitConfig
from commentclf.files import canonical_json
from commentclf.metrics import classification_report

log = logging.getLogger(__name__)


def _macro_f1(y_pred, y_true) -> dict:
    # setfit's default metric ("accuracy") downloads a metric script from the hub and fails offline.
    from sklearn.metrics import f1_score

    return {"macro_f1": float(f1_score(y_true, y_pred, average="macro"))}


def train_setfit(
    body: str,
    train_texts: list[str],
    train_labels: list[str],
    dev_texts: list[str],
    dev_labels: list[str],
    labels: list[str],
    minority: str,
    cfg: SetFitConfig,
    seed: int,
    out_dir: Path,
):
    """Train body + head, choose the head's C on dev macro-F1, save to `out_dir`. Returns (model, dev report,
    the trainer's logged steps: embedding loss and learning rate)."""
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    model = SetFitModel.from_pretrained(
        body, labels=labels, head_params={"class_weight": "balanced", "max_iter": 2000}, device="cpu"
    )
    if cfg.freeze_embeddings:
        model.model_body[0].auto_model.get_input_embeddings().requires_grad_(False)
    # Labels as indices into `labels`, so predict_proba's columns follow the params' label order.
    y_train = [labels.index(label) for label in train_labels]
    y_dev = [labels.index(label) for label in dev_labels]
    train_ds = Dataset.from_dict({"text": [cfg.prefix + t for t in train_texts], "label": y_train})
    dev_ds = Dataset.from_dict({"text": [cfg.prefix + t for t in dev_texts], "label": y_dev})
    args = TrainingArguments(
        output_dir=str(out_dir / "_checkpoints"),
        batch_size=cfg.batch_size,
        max_steps=cfg.max_steps,
        body_learning_rate=cfg.body_lr,
        max_length=cfg.max_length,
        seed=seed,
        report_to="none",
        save_strategy="no",
        show_progress_bar=False,
        logging_steps=max(1, cfg.max_steps // 20),
    )
    trainer = Trainer(model=model, args=args, train_dataset=train_ds, eval_dataset=dev_ds, metric=_macro_f1)
    trainer.train()

    # Refit the head for each C on the trained body's embeddings and keep the best on dev.
    x_train = model.encode(train_ds["text"], batch_size=32)
    x_dev = model.encode(dev_ds["text"], batch_size=32)
    scores = {}
    best = None
    for c in cfg.head_c:
        head = LogisticRegression(C=c, class_weight="balanced", max_iter=2000, random_state=seed)
        head.fit(x_train, y_train)
        scores[c] = float(f1_score(y_dev, head.predict(x_dev), average="macro"))
        if best is None or scores[c] > scores[best[0]]:
            best = (c, head)
    model.model_head = best[1]
    # The same bytes wherever the repository lives and whatever the hash seed (DVC hashes this folder):
    # setfit names the model in its card after the save path only when that lies under the temp dir,
    # and writes its config from a set.
    model.model_card_data.model_id = str(out_dir)
    model.save_pretrained(str(out_dir))
    canonical_json(Path(out_dir) / "config_setfit.json")

    proba = model.model_head.predict_proba(x_dev)
    report = classification_report(dev_labels, [labels[i] for i in proba.argmax(1)], labels, minority)
    steps = [
        {"step": h["step"], "embedding_loss": h["embedding_loss"], "learning_rate": h["learning_rate"]}
        for h in trainer.st_trainer.state.log_history  # the sentence-transformers trainer inside setfit's
        if "embedding_loss" in h
    ]
    return model, {"head_c": best[0], "head_c_dev_macro_f1": scores, **report}, steps


def load_setfit(path: str | Path):
    from setfit import SetFitModel

    return SetFitModel.from_pretrained(str(path), device="cpu")


def setfit_proba(model, texts: list[str], prefix: str, batch_size: int = 32) -> np.ndarray:
    """(n, n_labels) probabilities, columns in the params' label order."""
    n_labels = len(model.labels) if model.labels else len(model.model_head.classes_)
    if not texts:
        return np.zeros((0, n_labels), dtype=np.float32)
    emb = model.encode([prefix + t for t in texts], batch_size=batch_size)
    proba = model.model_head.predict_proba(emb)
    # classes_ are the label indices seen in training; put each in its own column.
    out = np.zeros((len(texts), n_labels), dtype=np.float32)
    out[:, model.model_head.classes_] = proba
    return out
