"""Issue 13 point 6: a stage-1 model without attention runs on a case without organ masks of any body site (a thigh
sarcoma PET/CT, real data), says so in one line, and the run tells the user about the catalogue's any-site model when
the attention model cannot run."""

import json

from stage1_support import run_sts_with_stage1_without_attention

from LNStagingLib.models.catalogue import Catalogue


def test_stage1_without_attention_runs_on_a_real_case_without_organ_masks(data_dir, tmp_path, capsys):
    out, printed = run_sts_with_stage1_without_attention(data_dir, tmp_path, capsys)
    assert "Stage 1 ran without distance-guided attention" in printed
    assert "Stage-1 segmentation skipped" not in printed and "No stage-1 model fits" not in printed
    provenance = json.loads((out / "provenance.json").read_text())
    windows = provenance["stage1_windows"]
    assert windows["grid_spacing_mm"] == [3.0, 3.0, 5.0] and windows["run"] > 0
    # --candidates pet names the detector, not a file: merged with stage 1, never hashed as an input
    assert "PET candidates from SUV rules" in printed and "candidates" not in provenance["inputs"]
    sources = {c["source"] for c in json.loads((out / "candidates.json").read_text())["candidates"]}
    assert sources & {"pet", "stage1+pet"}



def test_the_catalogue_names_its_any_site_stage1_model():
    """The shipped catalogue holds a stage-1 model without attention for any site, phantom-trained and not the
    default (the attention model stays the abdominal default)."""
    catalogue = Catalogue.read()
    entry = catalogue.any_site_without_attention()
    assert entry is not None and entry.id == "demo-seg-noattention"
    assert entry.training_domain == "synthetic phantom" and not entry.default
    assert catalogue.default_id("seg") == "demo-seg"
    assert catalogue.resolve(entry.id, "seg").is_file()
