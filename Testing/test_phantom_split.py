"""Cohort split rounding (issue 31): a test fraction above 0 gives at least one test case, or the command says why
not (every fold gets a case first)."""

import json

from LNStagingLib.cli import main
from LNStagingLib.dataset.format import assign_splits


def test_a_positive_fraction_gives_at_least_one_test_case():
    ids = [f"p{i}" for i in range(4)]
    folds, test = assign_splits(ids, folds=2, test_fraction=0.1, seed=0)  # 0.4 cases would round to none
    assert len(test) == 1 and sorted(set(folds.values())) == [0, 1] and set(folds) | set(test) == set(ids)
    assert assign_splits(ids, folds=2, test_fraction=0.0, seed=0)[1] == []
    assert len(assign_splits([f"p{i}" for i in range(23)], folds=5, test_fraction=0.2, seed=3)[1]) == 5  # unchanged
    assert assign_splits(ids, folds=4, test_fraction=0.2, seed=0)[1] == []  # the folds take every case first


def test_phantom_says_when_the_folds_leave_no_test_case(tmp_path, capsys):
    small = ["--size", "48x48x32", "--seed", "2"]
    assert main(["phantom", "--cases", "5", "--out", str(tmp_path / "five"), *small]) == 0  # default: 5 folds, 0.2
    printed = capsys.readouterr().out
    assert "5 in 5 fold(s), 0 test" in printed
    assert "No test case: 5 case(s) fill the 5 fold(s) first" in printed
    assert json.loads((tmp_path / "five" / "dataset.json").read_text())["test"] == []

    assert main(["phantom", "--cases", "5", "--folds", "4", "--out", str(tmp_path / "four"), *small]) == 0
    printed = capsys.readouterr().out
    assert "4 in 4 fold(s), 1 test" in printed and "No test case" not in printed
    assert len(json.loads((tmp_path / "four" / "dataset.json").read_text())["test"]) == 1
