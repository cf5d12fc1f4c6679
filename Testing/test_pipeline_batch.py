"""`lnstaging run-batch`: one failing case is recorded and the rest continue; a re-run skips finished cases."""

import json

from LNStagingLib.cli import main
from LNStagingLib.phantom.cohort import write_cohort


def test_batch_records_failures_and_resumes(tmp_path, capsys):
    cohort = write_cohort(tmp_path / "cohort", seed=9, cases=3, size="small", folds=1, test_fraction=0.0)
    broken = cohort / "cases" / "case001" / "pet.nii.gz"
    broken.write_bytes(broken.read_bytes()[:200])  # truncated gzip: this case must fail, the others must not
    out = tmp_path / "batch"

    code = main(["run-batch", "--data", str(cohort), "--out", str(out), "--models", "none"])
    summary = json.loads((out / "batch_summary.json").read_text())
    assert code == 1
    assert summary["finished"] == ["case000", "case002"]
    assert list(summary["failed"]) == ["case001"] and "truncated" in summary["failed"]["case001"]
    assert not (out / "case001").exists()  # a failed case leaves no folder that looks complete
    assert (out / "case000" / "candidates.json").is_file() and (out / "case002" / "report.html").is_file()
    finished_at = (out / "case000" / "candidates.json").stat().st_mtime_ns

    write_cohort(tmp_path / "fixed", seed=9, cases=3, size="small", folds=1, test_fraction=0.0)
    broken.write_bytes((tmp_path / "fixed" / "cases" / "case001" / "pet.nii.gz").read_bytes())
    capsys.readouterr()
    code = main(["run-batch", "--data", str(cohort), "--out", str(out), "--models", "none"])
    assert code == 0
    assert "2 already finished (skipped), 1 to run" in capsys.readouterr().out
    assert (out / "case000" / "candidates.json").stat().st_mtime_ns == finished_at
    summary = json.loads((out / "batch_summary.json").read_text())
    assert summary["finished"] == ["case000", "case001", "case002"] and summary["failed"] == {}
