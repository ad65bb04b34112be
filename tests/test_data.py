import unicodedata

import polars as pl
import pytest

from commentclf.config import parse_params
from commentclf.data import (
    DataError,
    build_splits,
    load_labeled,
    read_table,
    stratified_split,
    text_id,
)
from conftest import LABELS, RUW, base_params


def write_csv(path, rows, columns=("text", "label")):
    pl.DataFrame(rows, schema=list(columns), orient="row").write_csv(path)
    return path


def labeled_rows(n_per_label=10):
    return [(f"commentaire numéro {i} sur le thème {label}", label) for label in LABELS for i in range(n_per_label)]


def make_cfg(tmp_path, labeled_rows_=None, pool_rows=None, **data):
    write_csv(tmp_path / "labeled.csv", labeled_rows_ if labeled_rows_ is not None else labeled_rows())
    write_csv(tmp_path / "pool.csv", [(t,) for t in (pool_rows or ["un texte du pool", "un autre"])], ["text"])
    data = {"labeled": str(tmp_path / "labeled.csv"), "unlabeled": str(tmp_path / "pool.csv"), **data}
    raw = base_params(**data)
    return parse_params(raw)


# ---- bad input: each error names the file, the column and the row --------------------------------


def test_missing_file(tmp_path):
    cfg = make_cfg(tmp_path)
    with pytest.raises(DataError, match=r"nope\.csv: file not found"):
        load_labeled(tmp_path / "nope.csv", cfg.data, LABELS)


def test_missing_column(tmp_path):
    write_csv(tmp_path / "x.csv", [("a", "pro_ukraine")], ["comment", "label"])
    cfg = make_cfg(tmp_path)
    with pytest.raises(DataError, match=r"x\.csv: missing column 'text' \(columns found: \['comment', 'label'\]\)"):
        load_labeled(tmp_path / "x.csv", cfg.data, LABELS)


def test_unknown_label_names_file_column_and_row(tmp_path):
    rows = labeled_rows(3)
    rows[4] = ("texte mal étiqueté", "pro_mars")
    write_csv(tmp_path / "x.csv", rows)
    cfg = make_cfg(tmp_path)
    with pytest.raises(DataError) as err:
        load_labeled(tmp_path / "x.csv", cfg.data, LABELS)
    msg = str(err.value)
    assert "x.csv: column 'label', row 6: unknown label 'pro_mars'" in msg  # header is line 1
    assert "allowed labels: ['pro_ukraine', 'pro_russia', 'off_topic']" in msg


def test_missing_label_value_is_an_unknown_label(tmp_path):
    rows = labeled_rows(3) + [("texte sans étiquette", "")]
    write_csv(tmp_path / "x.csv", rows)
    with pytest.raises(DataError, match=r"row 11: unknown label ''"):
        load_labeled(tmp_path / "x.csv", make_cfg(tmp_path).data, LABELS)


def test_too_few_rows_to_split(tmp_path):
    rows = [r for r in labeled_rows(10) if r[1] != "pro_russia"] + [("seul avis prorusse", "pro_russia")] * 1
    cfg = make_cfg(tmp_path, rows)
    with pytest.raises(
        DataError, match=r"too few labelled rows to split \('pro_russia' has 1; each label needs at least 4"
    ):
        build_splits(cfg.data, cfg.split, LABELS)


def test_bad_encoding(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("text,label\nJ'ai été très déçu,off_topic\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1\.csv: not valid UTF-8 .*re-save the file as UTF-8"):
        read_table(path)


@pytest.mark.parametrize("role", ["labeled", "unlabeled", "test"])
@pytest.mark.parametrize(
    "content, message",
    [("", r"the file is empty \(no header, no rows\)"), ("text,label\n", r"no rows, only a header")],
    ids=["empty", "header-only"],
)
def test_an_empty_or_header_only_file_is_a_one_line_error_naming_it(tmp_path, role, content, message):
    bad = tmp_path / "bad.csv"
    bad.write_text(content)
    cfg = make_cfg(tmp_path, **{role: str(bad)})
    with pytest.raises(DataError, match=rf"^{tmp_path}/bad\.csv: {message}$"):
        build_splits(cfg.data, cfg.split, LABELS)


def test_a_labelled_file_left_empty_by_cleaning_says_so(tmp_path):
    cfg = make_cfg(tmp_path, labeled_rows_=[("   ", "pro_ukraine"), ("", "")])
    with pytest.raises(DataError, match="no labelled rows left to split"):
        build_splits(cfg.data, cfg.split, LABELS)


def test_broken_parquet(tmp_path):
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"PAR1 this is not really parquet")
    with pytest.raises(DataError, match=r"broken\.parquet: cannot read file"):
        read_table(path)


def test_unsupported_suffix(tmp_path):
    path = tmp_path / "data.xlsx"
    path.write_bytes(b"xx")
    with pytest.raises(DataError, match=r"unsupported file type '\.xlsx'"):
        read_table(path)


def test_malformed_csv(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text('text,label\n"unterminated quote,off_topic\n' + "a,b,c,d\n" * 3)
    with pytest.raises(DataError, match=r"bad\.csv: malformed CSV"):
        read_table(path)


def test_parquet_input_works(tmp_path):
    pl.DataFrame(labeled_rows(3), schema=["text", "label"], orient="row").write_parquet(tmp_path / "l.parquet")
    df, report = load_labeled(tmp_path / "l.parquet", make_cfg(tmp_path).data, LABELS)
    assert report.kept == 9 and len(df) == 9


# ---- cleaning: nothing disappears without a count --------------------------------------------------


def test_cleaning_counts(tmp_path):
    decomposed = unicodedata.normalize("NFD", "Été à Kharkiv")
    rows = labeled_rows(4) + [
        ("   ", "off_topic"),  # whitespace only
        ("", "off_topic"),  # empty
        ("commentaire numéro 0 sur le thème pro_ukraine", "pro_ukraine"),  # exact duplicate
        ("  " + decomposed + " ", "off_topic"),  # NFD + spaces -> normalised
        ("Été à Kharkiv", "off_topic"),  # ... and then a duplicate of it
        ("texte contradictoire", "pro_ukraine"),
        ("texte contradictoire", "pro_russia"),  # same text, other label: both dropped
        ("x" * 120, "off_topic"),  # truncated at max_chars=100
    ]
    cfg = make_cfg(tmp_path, rows, max_chars=100)
    df, rep = load_labeled(tmp_path / "labeled.csv", cfg.data, LABELS)
    assert (rep.rows_read, rep.empty, rep.duplicates, rep.conflicting_labels, rep.truncated) == (20, 2, 2, 2, 1)
    assert rep.kept == len(df) == 20 - 2 - 2 - 2
    assert rep.rows_read == rep.kept + rep.empty + rep.duplicates + rep.conflicting_labels
    assert "Été à Kharkiv" in set(df["text"])  # NFC form
    assert df["text"].str.len_chars().max() == 100
    assert df["id"].to_list() == [text_id(t) for t in df["text"]]


def test_pool_overlap_and_duplicates_are_counted(tmp_path):
    pool = ["nouveau texte", "nouveau texte", "commentaire numéro 1 sur le thème off_topic", " ", "autre"]
    cfg = make_cfg(tmp_path, pool_rows=pool)
    result = build_splits(cfg.data, cfg.split, LABELS)
    rep = result.reports["pool"]
    assert (rep.rows_read, rep.empty, rep.duplicates, rep.overlap_removed, rep.kept) == (5, 1, 1, 1, 2)
    assert set(result.pool["text"]) == {"nouveau texte", "autre"}


def test_texts_that_look_like_missing_values_are_kept(tmp_path):
    rows = labeled_rows(3) + [("NA", "off_topic"), ("null", "off_topic")]
    df, rep = load_labeled(write_csv(tmp_path / "x.csv", rows), make_cfg(tmp_path).data, LABELS)
    assert {"NA", "null"} <= set(df["text"]) and rep.empty == 0


# ---- split --------------------------------------------------------------------------------------------


def test_split_is_stratified_disjoint_and_deterministic(tmp_path):
    cfg = make_cfg(tmp_path, labeled_rows(20))
    a = build_splits(cfg.data, cfg.split, LABELS)
    b = build_splits(cfg.data, cfg.split, LABELS)
    for name in ("train", "dev", "calib", "test"):
        assert a.splits[name].equals(b.splits[name])
        assert set(a.splits[name]["label"]) == set(LABELS)  # every label in every split
    ids = [set(df["id"]) for df in a.splits.values()]
    assert sum(map(len, ids)) == len(set().union(*ids)) == 60
    # 20 %, 15 % and 15 % of 20, per label
    assert len(a.splits["test"]) == 12 and len(a.splits["dev"]) == 9 and len(a.splits["calib"]) == 9


def test_fractions_that_leave_no_train_rows_are_refused_by_name(tmp_path):
    cfg = make_cfg(tmp_path, labeled_rows(20))
    split = cfg.split.model_copy(update={"calib_frac": 0.7})
    named = r"split.dev_frac \+ split.test_frac \+ split.calib_frac = 1.05 leaves no train rows"
    with pytest.raises(DataError, match=named):
        build_splits(cfg.data, split, LABELS)


def test_other_seed_gives_other_split(tmp_path):
    cfg = make_cfg(tmp_path, labeled_rows(20))
    a = stratified_split(
        load_labeled(cfg.data.labeled, cfg.data, LABELS)[0], {"train": 0.65, "dev": 0.15, "test": 0.2}, 1, 3
    )
    b = stratified_split(
        load_labeled(cfg.data.labeled, cfg.data, LABELS)[0], {"train": 0.65, "dev": 0.15, "test": 0.2}, 2, 3
    )
    assert set(a["test"]["id"]) != set(b["test"]["id"])


def test_external_test_file_is_the_test_set(tmp_path):
    test_rows = [(f"texte de test {i} {label}", label) for label in LABELS for i in range(4)]
    test_rows.append(("commentaire numéro 2 sur le thème pro_russia", "pro_russia"))  # also in labelled
    write_csv(tmp_path / "test.csv", test_rows)
    cfg = make_cfg(tmp_path, labeled_rows(10), test=str(tmp_path / "test.csv"))
    result = build_splits(cfg.data, cfg.split, LABELS)
    assert set(result.splits["test"]["text"]) == {t for t, _ in test_rows}
    assert result.reports["labeled"].overlap_removed == 1  # leaked test text left the seed
    seed = pl.concat([result.splits[name] for name in ("train", "dev", "calib")])
    assert len(seed) == 29 and not set(seed["text"]) & set(result.splits["test"]["text"])


def test_test_path_equal_to_labeled_means_carve_out(tmp_path):
    cfg = make_cfg(tmp_path, labeled_rows(20), test=str(tmp_path / "labeled.csv"))
    result = build_splits(cfg.data, cfg.split, LABELS)
    assert "test" not in result.reports and len(result.splits["test"]) == 12


@pytest.mark.skipif(not RUW.is_dir(), reason="../shared/datasets/ruw is not beside this checkout")
def test_real_ruw_data_validates_and_splits():
    raw = base_params(labeled=str(RUW / "seed.csv"), unlabeled=str(RUW / "pool.csv"), test=str(RUW / "seed.csv"))
    raw["labels"] = [{"name": n, "description": n} for n in ("pro_ukraine", "pro_russia", "neutral")]
    raw["language"] = "en"
    cfg = parse_params(raw)
    result = build_splits(cfg.data, cfg.split, cfg.label_names)
    sizes = {name: len(df) for name, df in result.splits.items()}
    assert sum(sizes.values()) == result.reports["labeled"].kept == 450
    assert sizes["test"] == 90 and result.reports["pool"].kept == 4030
    assert (result.splits["test"]["label"] == "pro_russia").sum() >= 20


def test_blank_lines_are_counted_not_lost(tmp_path):
    path = tmp_path / "x.csv"
    body = "".join(f'"{t}",{label}\n' for t, label in labeled_rows(3))
    path.write_text("text,label\n" + body + "\n,\n")
    df, rep = load_labeled(path, make_cfg(tmp_path).data, LABELS)
    assert rep.rows_read == 11 and rep.empty == 2 and rep.kept == 9


def test_table_batches_read_from_any_row_in_bounded_batches(tmp_path):
    from commentclf.data import table_batches, table_rows

    df = pl.DataFrame({"id": range(25), "text": [f"t{i}" for i in range(25)], "n": [1.5] * 25})
    df.write_parquet(tmp_path / "in.parquet", row_group_size=10)  # groups of 10, 10, 5
    df.write_csv(tmp_path / "in.csv")
    for name in ("in.parquet", "in.csv"):
        batches = list(table_batches(tmp_path / name, start=13, batch_rows=4))
        assert max(len(b) for b in batches) <= 4
        got = pl.concat(batches)
        assert got["__row"].to_list() == list(range(13, 25)) and got["text"].to_list() == df["text"][13:].to_list()
        assert got.schema["n"] == pl.String  # every column as text, as read_table gives it
        assert table_rows(tmp_path / name) == 25
    assert list(table_batches(tmp_path / "in.csv", start=25)) == []


def test_table_batches_csv_edge_cases_and_errors(tmp_path):
    from commentclf.data import table_batches, table_rows

    (tmp_path / "ok.csv").write_text('\ufeffid,text\n1,"deux\nlignes"\n\n2,""\n', encoding="utf-8")
    got = pl.concat(list(table_batches(tmp_path / "ok.csv")))
    assert got.columns == ["__row", "id", "text"]  # no BOM in the first name
    assert got["text"].to_list() == ["deux\nlignes", ""] and table_rows(tmp_path / "ok.csv") == 2
    (tmp_path / "ragged.csv").write_text("id,text\n1,a\n2,b,c\n")
    with pytest.raises(DataError, match="line 3 has 3 fields, the header 2"):
        list(table_batches(tmp_path / "ragged.csv"))
    (tmp_path / "dup.csv").write_text("text,text\na,b\n")
    with pytest.raises(DataError, match="duplicate column names"):
        list(table_batches(tmp_path / "dup.csv"))
    (tmp_path / "latin1.csv").write_bytes("id,text\n1,caf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match="not valid UTF-8"):
        list(table_batches(tmp_path / "latin1.csv"))
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match="cannot read file"):
        list(table_batches(tmp_path / "broken.parquet"))


@pytest.mark.parametrize("content", ["", "text,label\n"], ids=["empty", "header-only"])
def test_the_split_stage_reports_an_empty_labelled_file_in_one_line(tmp_path, content):
    import subprocess
    import sys

    import yaml

    from conftest import REPO

    (tmp_path / "labeled.csv").write_text(content)
    write_csv(tmp_path / "pool.csv", [("un texte du pool",)], ["text"])
    raw = base_params(labeled=str(tmp_path / "labeled.csv"), unlabeled=str(tmp_path / "pool.csv"))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    args = ["--params", tmp_path / "params.yaml", "--out-dir", tmp_path / "split", "--metrics", tmp_path / "d.json"]
    proc = subprocess.run(
        [sys.executable, "stages/split.py", *map(str, args)], cwd=REPO, capture_output=True, text=True
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert f"error: {tmp_path / 'labeled.csv'}: " in " ".join(proc.stderr.split())
    assert len(proc.stderr.strip().splitlines()) <= 2, proc.stderr  # rich may wrap the one line
