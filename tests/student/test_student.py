"""The e5 student: mean-pooling head, frozen-head baseline, and its ONNX export with parity."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from commentclf.student.model import MeanPoolingClassifier, load_student, predict_proba
from commentclf.student.onnx_export import block_quantize, export_fp32, optimize, parity, quantize, quantize_embeddings
from commentclf.student.onnx_model import OnnxClassifier
from commentclf.student.train import (
    TrainingSet,
    class_weights,
    frozen_head_baseline,
    length_batches,
    one_hot,
    sharpen,
    train_student,
    weighted_soft_cross_entropy,
)
from conftest import section

LABELS = ["pro_ukraine", "pro_russia", "off_topic"]
TEXTS = [
    "Il faut armer l'Ukraine.",
    "Slava Ukraini !",
    "Les sanctions doivent continuer.",
    "L'OTAN a provoqué la Russie.",
    "Arrêtons les livraisons d'armes.",
    "Poutine défend son pays.",
    "Le site est en panne.",
    "Belle photo de une.",
    "Quel temps aujourd'hui.",
]
GOLD = [label for label in LABELS for _ in range(3)]


def data(e5_folder) -> TrainingSet:
    """The nine comments as both the training and the dev rows."""
    return TrainingSet(str(e5_folder), TEXTS, GOLD, TEXTS, GOLD, LABELS, "pro_russia")


def test_class_weights_balance_the_rare_label():
    w = class_weights(one_hot(["a", "a", "a", "a", "b", "c", "c", "c"], ["a", "b", "c"]))
    assert w[1] > w[2] > w[0] and torch.isclose((w * torch.tensor([4, 1, 3])).sum(), torch.tensor(8.0))
    soft = np.array([[0.5, 0.5, 0.0], [0.5, 0.0, 0.5]])  # expected counts 1, 0.5, 0.5
    assert torch.allclose(class_weights(soft), torch.tensor([2 / 3, 4 / 3, 4 / 3]))


def test_soft_cross_entropy_is_weighted_cross_entropy_on_one_hot_targets():
    torch.manual_seed(0)
    logits, y, w = torch.randn(5, 3), torch.tensor([0, 2, 1, 1, 0]), torch.tensor([0.5, 2.0, 1.0])
    targets = torch.nn.functional.one_hot(y, 3).float()
    expected = torch.nn.functional.cross_entropy(logits, y, weight=w)
    assert torch.allclose(weighted_soft_cross_entropy(logits, targets, w), expected)
    # a soft target is minimised by predicting that distribution
    target = torch.tensor([[0.7, 0.2, 0.1]])
    free = torch.zeros(1, 3, requires_grad=True)
    optimizer = torch.optim.SGD([free], lr=1.0)
    for _ in range(500):
        optimizer.zero_grad()
        weighted_soft_cross_entropy(free, target, torch.ones(3)).backward()
        optimizer.step()
    assert torch.allclose(torch.softmax(free, -1), target, atol=1e-3)


def test_mean_pooling_ignores_padding(e5_folder):
    model = MeanPoolingClassifier.from_pretrained(e5_folder, num_labels=3).eval()
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(e5_folder)
    alone = tok(["query: bonjour"], return_tensors="pt")
    padded = tok(["query: bonjour", "query: un texte bien plus long que le premier"], padding=True, return_tensors="pt")
    with torch.no_grad():
        a = model(**alone).logits[0]
        b = model(**padded).logits[0]
    assert torch.allclose(a, b, atol=1e-4)


@pytest.fixture(scope="module")
def student(e5_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("student")
    s = section(
        "student",
        head="mean",
        lr=1e-4,
        head_lr=None,
        epochs=2,
        batch_size=9,
        max_length=32,
        warmup_ratio=0.0,
        weight_decay=0.0,
        prefix="query: ",
        select_on="loss",
    )
    result = train_student(data(e5_folder), s, 0, out)
    return out, result


def test_student_trains_keeps_best_epoch_and_saves_label_names(student):
    out, result = student
    assert [h["epoch"] for h in result.history] == [1, 2]
    assert result.dev["macro_f1"] == max(h["dev_macro_f1"] for h in result.history)
    model, tok = load_student(out)
    assert isinstance(model, MeanPoolingClassifier) and model.config.id2label[1] == "pro_russia"
    p = predict_proba(model, tok, TEXTS, "query: ", 32)
    assert p.shape == (9, 3) and np.allclose(p.sum(1), 1, atol=1e-5)


def test_frozen_head_equals_logistic_regression(e5_folder, tmp_path):
    s = section("student", prefix="query: ", max_length=32)
    r = frozen_head_baseline(data(e5_folder), s, 0, tmp_path)
    assert r.dev["accuracy"] >= 0.8  # a linear model fits 9 points
    model, tok = load_student(tmp_path)
    assert isinstance(model, MeanPoolingClassifier)


def test_fewer_layers_keep_the_first_pretrained_layers_and_save_a_smaller_student(e5_folder, tmp_path):
    from commentclf.errors import ParamsError

    full = MeanPoolingClassifier.from_pretrained(e5_folder, num_labels=3)
    s = section("student", layers=2, epochs=1, batch_size=9, max_length=32, lr=1e-4, head_lr=None, prefix="query: ")
    train_student(data(e5_folder), s, 0, tmp_path)
    model, tok = load_student(tmp_path)
    assert model.config.num_hidden_layers == 2 and len(model.bert.encoder.layer) == 2
    assert predict_proba(model, tok, TEXTS, "query: ", 32).shape == (9, 3)
    # frozen embeddings: the table is the base encoder's, so these are its weights, not fresh ones
    assert torch.equal(model.bert.embeddings.word_embeddings.weight, full.bert.embeddings.word_embeddings.weight)
    from commentclf.student.model import load_model

    truncated = load_model(str(e5_folder), "mean", LABELS, layers=3)
    assert len(truncated.bert.encoder.layer) == 3
    for kept, original in zip(truncated.bert.encoder.layer, full.bert.encoder.layer[:3], strict=True):
        assert all(torch.equal(a, b) for a, b in zip(kept.parameters(), original.parameters(), strict=True))
    with pytest.raises(ParamsError, match="student.layers is 13 but .* has only 12 layers"):
        too_many = s.model_copy(update={"layers": 13})
        train_student(data(e5_folder), too_many, 0)


@pytest.mark.parametrize(
    "scheme, kernels",
    [("hybrid", {"MatMulInteger", "MatMulNBits"}), ("blockwise", {"MatMulNBits"}), ("dynamic", {"MatMulInteger"})],
)
def test_onnx_export_quantise_and_parity(student, tmp_path, scheme, kernels):
    import onnx

    out, _ = student
    model, tok = load_student(out)
    fp32 = export_fp32(model, tok, tmp_path / "fp32")
    opt = optimize(tmp_path / "fp32", tmp_path / "optimized", "O1")
    cfg = section("onnx", per_channel=True, operators=["MatMul", "Gather"], scheme=scheme, isa="auto")
    int8, isa = quantize(tmp_path / "optimized", opt.name, tmp_path / "int8", cfg)
    assert isa in ("avx512_vnni", "avx2")
    graph = onnx.load(int8).graph
    weights = {w.name for w in graph.initializer}
    ops = {node.op_type for node in graph.node}
    assert kernels <= ops and ops & {"MatMulInteger", "MatMulNBits"} == kernels, ops
    # every MatMul with a weight is quantised (at O1 only the attention products of two activations stay float)
    assert not [n.name for n in graph.node if n.op_type == "MatMul" and n.input[1] in weights]
    # params.yaml's embedding: blockwise -> no embedding table is left in float, each is read block-wise
    assert not [n.name for n in graph.node if n.op_type == "Gather" and n.input[0] in weights]
    assert len([n for n in graph.node if n.op_type == "GatherBlockQuantized"]) == 3  # word, position, type
    if scheme == "hybrid":  # block-wise exactly where the feed-forward activations are read: one per layer
        nbits = [n for n in graph.node if n.op_type == "MatMulNBits"]
        assert len(nbits) == model.config.num_hidden_layers and all("output/dense" in n.name for n in nbits)
    ref = predict_proba(model, tok, TEXTS, "query: ", 32)
    onnx32 = OnnxClassifier(fp32, max_length=32)
    p32 = onnx32.predict_proba(TEXTS)
    # its tokenizer (tokenizers alone, no transformers) encodes as the transformers one does, truncation included
    odd = TEXTS + ["", "😀 日本語", "mot " * 200]
    hf = tok(["query: " + t for t in odd], padding=True, truncation=True, max_length=32, return_tensors="np")
    for name, ids in onnx32.encode(odd).items():
        assert np.array_equal(ids, hf[name]), name
    assert parity(ref, p32)["argmax_agreement"] == 1.0 and parity(ref, p32)["max_prob_diff"] < 1e-3
    tok.save_pretrained(tmp_path / "int8")
    int8_clf = OnnxClassifier(tmp_path / "int8", threads=1, max_length=32)
    p8 = int8_clf.predict_proba(TEXTS)
    assert p8.shape == ref.shape and parity(ref, p8)["max_prob_diff"] < 0.2
    # one text per call by default: a text's answer is the same in any list, as `serve` gives it alone ...
    alone = np.concatenate([int8_clf.predict_proba([t]) for t in TEXTS])
    assert np.array_equal(p8, alone) and np.array_equal(int8_clf.predict_proba(TEXTS[::-1]), alone[::-1])
    # several calls at once (predict's local engine, one per core): each text's own answer, in the texts' order
    assert np.array_equal(OnnxClassifier(tmp_path / "int8", max_length=32, workers=3).predict_proba(TEXTS), alone)
    if scheme == "dynamic":  # ... whereas in a batch, one activation scale for all texts moves each one's scores
        assert not np.array_equal(int8_clf.predict_proba(TEXTS, batch_size=len(TEXTS)), alone)
    # Gather included: the 250k-row embedding table is int8 too, so the file is ~4x smaller than fp32
    assert fp32.stat().st_size / int8.stat().st_size > 3.5


@pytest.mark.parametrize("bits", [4, 8])
def test_block_quantized_embeddings_gather_what_numpy_dequantises(tmp_path, bits):
    """Our hand-built GatherBlockQuantized (onnxruntime's quantizer writes it only at 4 bits) is read by
    onnxruntime exactly as we meant: each row back within half a step of its block's scale."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    table = rng.normal(size=(50, 64)).astype(np.float32)
    table[7] = 0  # an all-zero row (padding) stays zero
    table[3, :32] *= 40  # an outlier block does not cost its row's other block its precision
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "ids"], ["out"], name="embed")],
        "g",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [None])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [None, 64])],
        [numpy_helper.from_array(table, "table")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    assert quantize_embeddings(model, bits, block_size=32) == ["table"]
    onnx.checker.check_model(model)
    onnx.save(model, tmp_path / "m.onnx")
    ids = np.array([0, 3, 7, 49, 3])
    out = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"]).run(None, {"ids": ids})[0]
    _, scales, _ = block_quantize(table, bits, 32)
    step = np.repeat(scales, 32, axis=1)[ids]
    assert out.shape == (5, 64) and np.all(np.abs(out - table[ids]) <= step / 2 + 1e-6)
    assert np.array_equal(out[2], np.zeros(64))
    assert np.abs(out[1, 32:] - table[3, 32:]).max() < np.abs(table[3, :32]).max() / 2 ** (bits - 1) / 4
    with pytest.raises(ValueError, match="not a multiple of onnx.block_size"):
        block_quantize(table, bits, 48)


def test_sharpen_raises_the_top_label_and_keeps_argmax_and_one_hot_rows():
    targets = np.array([[0.46, 0.30, 0.24], [0.0, 1.0, 0.0], [0.2, 0.3, 0.5]])
    sharp = sharpen(targets, 0.5)
    assert np.allclose(sharp.sum(1), 1)
    assert (sharp.argmax(1) == targets.argmax(1)).all()
    assert (sharp.max(1)[[0, 2]] > targets.max(1)[[0, 2]]).all()
    assert np.array_equal(sharp[1], targets[1])
    assert np.allclose(sharp[0], np.array([0.46, 0.30, 0.24]) ** 2 / (0.46**2 + 0.30**2 + 0.24**2))
    assert sharpen(targets, 1.0) is targets


def test_self_training_stops_on_a_flat_curve_and_keeps_the_best_round():
    from commentclf.student.train import self_train

    def run(losses):
        trained = []

        def retrain(targets):
            trained.append(targets)
            return SimpleNamespace(dev_loss=losses[len(trained)], round=len(trained))

        best, curve = self_train(SimpleNamespace(dev_loss=losses[0], round=0), lambda s: s.round, retrain, rounds=5)
        return best, curve, trained

    best, curve, trained = run([1.0, 1.0, 0.5, 0.4])  # flat at once: one round tried, the first kept
    assert best.round == 0 and len(trained) == 1 and [c["kept"] for c in curve] == [True, False]
    best, curve, trained = run([1.0, 0.9, 0.8, 0.85, 0.1])  # improves twice, then rises: stops there
    assert best.round == 2 and len(trained) == 3 and trained == [0, 1, 2]  # each round relabels with the best
    best, curve, _ = run([1.0, 0.9, 0.8, 0.7, 0.6, 0.5])
    assert best.round == 5 and len(curve) == 6  # never more than `rounds`


def test_length_batches_cover_every_row_once_and_pad_less():
    rng = np.random.default_rng(0)
    lengths = list(rng.integers(5, 120, size=1000))
    batches = length_batches(lengths, 16, np.random.default_rng(1))
    rows = np.concatenate(batches)
    assert sorted(rows) == list(range(1000)) and len(batches) == 63 and max(map(len, batches)) == 16
    padded = sum(16 * max(lengths[i] for i in b) for b in batches)
    random = np.random.default_rng(1).permutation(1000)
    padded_random = sum(16 * max(lengths[i] for i in random[b : b + 16]) for b in range(0, 1000, 16))
    assert padded < 0.75 * padded_random
    again = length_batches(lengths, 16, np.random.default_rng(1))
    assert all((a == b).all() for a, b in zip(batches, again))  # the seed fixes the epoch
    first_lengths = [max(lengths[i] for i in b) for b in batches]
    assert first_lengths != sorted(first_lengths)  # batch order shuffled, not short to long


def test_the_shipped_temperature_calibrates_every_reader_and_changes_the_version(student, tmp_path):
    import json

    from commentclf.files import model_version
    from commentclf.student.onnx_export import calibrate

    out, _ = student
    model, tok = load_student(out)
    fp32 = export_fp32(model, tok, tmp_path / "fp32")
    raw = OnnxClassifier(fp32, max_length=32)
    before, version = raw.predict_proba(TEXTS), raw.version
    assert raw.temperature == 1.0 and version == model_version(fp32)  # no calibration.json yet
    fit = calibrate(tmp_path / "fp32", before, GOLD, LABELS, "temperature")
    shipped = json.loads((tmp_path / "fp32" / "calibration.json").read_text())
    assert shipped["temperature"] == fit["temperature"] != 1.0 and shipped["fitted_on"] == "calib"
    assert fit["calib_nll_calibrated"] <= fit["calib_nll"] + 1e-3  # the fit minimises the calib rows' NLL
    calibrated = OnnxClassifier(fp32, max_length=32)
    t = calibrated.temperature
    expected = np.exp(np.log(before) / t) / np.exp(np.log(before) / t).sum(1, keepdims=True)
    assert np.allclose(calibrated.predict_proba(TEXTS), expected, atol=1e-6)
    assert (calibrated.predict_proba(TEXTS).argmax(1) == before.argmax(1)).all()  # a temperature keeps argmax
    assert np.allclose(OnnxClassifier(fp32, max_length=32, calibrated=False).predict_proba(TEXTS), before)
    assert calibrated.version != version  # predict's resuming and serve's /health tell the two apart
    calibrate(tmp_path / "fp32", before, GOLD, LABELS, "none")
    assert OnnxClassifier(fp32, max_length=32).temperature == 1.0


def test_export_fits_on_calib_alone_and_keeps_the_trim_only_where_held_out_rows_agree(student, tmp_path, monkeypatch):
    """Calibration and conformal sets are fitted on the calib rows' scores, never a dev, pool or test row's; the gate
    reads pool rows held out of the trimming corpus, and a trimmed export that misses it is redone untrimmed."""
    import json

    from commentclf.config import parse_params
    from commentclf.student import onnx_export
    from commentclf.student.onnx_export import ParityTexts, export_student
    from conftest import base_params

    out, _ = student
    model, tok = load_student(out)
    cfg = parse_params(base_params())
    cfg = cfg.model_copy(
        update={
            "onnx": cfg.onnx.model_copy(update={"compare_schemes": [], "min_int8_agreement": 0.0}),
            "student": cfg.student.model_copy(update={"max_length": 32}),
        }
    )
    dev, pool, test = TEXTS[:2], ["Une phrase jamais vue 日本語."], ["Encore une autre, inédite."]
    calib = TEXTS  # as many rows as no other part, so the fits' row counts tell which rows they saw
    fits = []
    real_calibrate = onnx_export.calibrate

    def spy(folder, proba, gold_labels, labels, method):
        fits.append((len(proba), gold_labels))
        return real_calibrate(folder, proba, gold_labels, labels, method)

    misses = iter(["the trimmed export misses the bound", None])  # the trimmed one fails, the redo passes
    monkeypatch.setattr(onnx_export, "calibrate", spy)
    monkeypatch.setattr(onnx_export, "_misses", lambda report, o: next(misses))
    corpus = TEXTS  # the held-out pool and test texts are not in it
    texts = ParityTexts(dev, pool, test, calib, GOLD)
    report = export_student(model, tok, texts, corpus, out, tmp_path / "onnx", cfg)
    assert fits == [(len(calib), GOLD)] * 4  # fp32 and int8, in each of the two exports: calib rows only
    assert report["trimmed"] is False and report["trim_refused"]["vocab"]["vocab_after"] < 250_000
    assert report["int8_vs_torch"]["rows"] == 1  # the gated measure is the held-out pool row's
    shipped = json.loads((tmp_path / "onnx" / "int8" / "calibration.json").read_text())
    assert len(shipped["conformal"]["scores"]) == len(calib) and shipped["fitted_on"] == "calib"
    assert OnnxClassifier(tmp_path / "onnx" / "int8", max_length=32).prediction_sets(
        np.array([[0.9, 0.05, 0.05]]), 0.1
    ).shape == (1, 3)
