from commentclf.metrics import classification_report

LABELS = ["pro_ukraine", "pro_russia", "off_topic"]


def test_report_by_hand():
    gold = ["pro_ukraine", "pro_ukraine", "pro_russia", "off_topic"]
    pred = ["pro_ukraine", "pro_russia", "pro_russia", "pro_ukraine"]
    r = classification_report(gold, pred, LABELS, "pro_russia")
    assert r["n"] == 4 and r["accuracy"] == 0.5
    # pro_ukraine: P 1/2 R 1/2 F 1/2; pro_russia: P 1/2 R 1 F 2/3; off_topic: never predicted, F 0
    assert r["f1"] == {"pro_ukraine": 0.5, "pro_russia": 2 / 3, "off_topic": 0.0}
    assert r["minority_f1"] == 2 / 3 and abs(r["macro_f1"] - (0.5 + 2 / 3) / 3) < 1e-12
    assert r["support"] == {"pro_ukraine": 2, "pro_russia": 1, "off_topic": 1}


def test_a_label_absent_from_gold_and_predictions_counts_as_zero():
    r = classification_report(["pro_ukraine"], ["pro_ukraine"], LABELS, "pro_russia")
    assert r["macro_f1"] == 1 / 3 and r["minority_f1"] == 0.0
