"""Stage-1 variants of `lnstaging train seg`: the paper's baseline uses the attention map nowhere; each ablation
uses it in one place only (docs/TRAINING.md)."""

import pytest

from LNStagingLib.cli import build_parser
from LNStagingLib.training.seg import seg_variant


@pytest.mark.parametrize("options, expected", [
    ([], (True, True)),  # the method: gate + informative negatives
    (["--no-attention"], (False, False)),  # the paper's nnU-Net baseline
    (["--attention-negatives-only"], (False, True)),
    (["--no-informative-negatives"], (True, False)),
])
def test_each_option_selects_gate_and_negative_sampling(options, expected):
    args = build_parser().parse_args(["train", "seg", "--data", "cohort", "--out", "run", *options])
    assert seg_variant(args) == expected


def test_two_variants_at_once_are_refused(capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["train", "seg", "--data", "c", "--out", "r", "--no-attention",
                                   "--attention-negatives-only"])
    assert exit_info.value.code == 2 and "not allowed with" in capsys.readouterr().err
