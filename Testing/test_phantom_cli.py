"""`lnstaging phantom`: writes a clean cohort, refuses to clobber, and leaves nothing behind on failure."""

import pytest

from LNStagingLib.cli import main as cli
from LNStagingLib.dataset.check import check_dataset
from LNStagingLib.dataset.format import read_dataset


def test_phantom_command_writes_a_clean_cohort(tmp_path, capsys):
    out = tmp_path / "cohort"
    assert cli(["phantom", "--seed", "4", "--out", str(out), "--cases", "3", "--size", "64x64x48",
                "--direction", "mixed", "--folds", "2", "--test-fraction", "0.34"]) == 0
    assert check_dataset(out).ok
    ds = read_dataset(out)
    assert ds.case_ids == ["case000", "case001", "case002"] and len(ds.test_ids) == 1 and ds.n_folds == 2
    assert ds.case("case000").load("ct").GetSize() == (64, 64, 48)
    assert [p.name for p in tmp_path.iterdir()] == ["cohort"], "no partial folders left"


def test_phantom_refuses_to_overwrite_without_flag(tmp_path, capsys):
    out = tmp_path / "cohort"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    assert cli(["phantom", "--seed", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--overwrite" in err and "Traceback" not in err
    assert (out / "mine.txt").read_text() == "keep me"


@pytest.mark.parametrize("args", [["--size", "huge"], ["--size", "10x10"], ["--cases", "0"], ["--spacing", "1", "0", "1"]])
def test_bad_arguments_give_one_line_errors_and_no_output(tmp_path, capsys, args):
    out = tmp_path / "cohort"
    assert cli(["phantom", "--seed", "1", "--out", str(out), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lnstaging phantom: error:")
    assert not out.exists()


def test_failure_mid_cohort_leaves_nothing(tmp_path, monkeypatch):
    import LNStagingLib.phantom.cohort as cohort

    real, calls = cohort.generate_case, []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return real(*args, **kwargs)

    monkeypatch.setattr(cohort, "generate_case", failing)
    with pytest.raises(RuntimeError):
        cohort.write_cohort(tmp_path / "cohort", seed=1, cases=3)
    assert list(tmp_path.iterdir()) == []
