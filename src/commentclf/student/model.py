"""The student model: an e5 encoder with a mean-pooling classification head, and how to load and run it.

Why a mean-pooling head: the e5 weights have no pooler (e5 was trained with mean pooling), and
`AutoModelForSequenceClassification` for BERT classifies from the CLS token through that randomly
initialised pooler, which a few hundred rows can collapse to one class. `MeanPoolingClassifier`
averages the token states (the way e5 itself embeds) and puts a linear layer on top; it is an ordinary
`BertPreTrainedModel`, so it saves as a normal folder (with id2label) and exports to ONNX like any BERT.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import AutoTokenizer, BertModel, BertPreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

from commentclf.errors import ParamsError


class MeanPoolingClassifier(BertPreTrainedModel):
    """BERT encoder -> mean over non-padding tokens -> dropout -> linear."""

    def __init__(self, config):
        super().__init__(config)
        self.bert = BertModel(config, add_pooling_layer=False)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None, **kwargs):
        hidden = self.bert(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        logits = self.classifier(self.dropout(pooled))
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)


def load_model(body: str, head: str, label_names: list[str], layers: int | None = None):
    """The encoder with a fresh classification head; `layers`: keep only its first k layers."""
    from transformers import AutoConfig

    id2label = dict(enumerate(label_names))
    kwargs = {"num_labels": len(label_names), "id2label": id2label, "label2id": {v: k for k, v in id2label.items()}}
    if layers is not None:
        available = AutoConfig.from_pretrained(body).num_hidden_layers
        if layers > available:
            raise ParamsError(f"student.layers is {layers} but {body} has only {available} layers")
        # A smaller config makes from_pretrained load layers 0..k-1 and skip the rest: the kept layers are
        # the pre-trained ones, and the saved student is an ordinary k-layer model (ONNX, serve unchanged).
        kwargs["num_hidden_layers"] = layers
    if head == "mean":
        return MeanPoolingClassifier.from_pretrained(body, **kwargs)
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(body, **kwargs)


def predict_proba(model, tokenizer, texts: list[str], prefix: str, max_length: int, batch_size: int = 32) -> np.ndarray:
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            enc = tokenizer(
                [prefix + t for t in texts[start : start + batch_size]],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
            out.append(torch.softmax(model(**enc).logits.float(), -1).numpy())
    return np.concatenate(out) if out else np.zeros((0, model.config.num_labels))


def load_student(path: str | Path):
    """(model, tokenizer) of a saved student folder (mean-pooling or standard head)."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    config = AutoConfig.from_pretrained(path)
    cls = (
        MeanPoolingClassifier
        if "MeanPoolingClassifier" in (config.architectures or [])
        else AutoModelForSequenceClassification
    )
    return cls.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)
