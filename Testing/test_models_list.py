"""`lnstaging models list` says for every catalogue entry what it was trained on and for which body site (issue 31):
a user sees before a run that the bundled models are phantom-trained and which site they apply to."""

import json
from pathlib import Path

from LNStagingLib.cli import main

CATALOGUE = Path(__file__).resolve().parents[1] / "Resources" / "Models.json"


def test_listing_shows_training_domain_and_body_site_of_every_model(capsys):
    assert main(["models", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    entries = json.loads(CATALOGUE.read_text())["models"]
    assert len(lines) == 2 * len(entries), lines
    for entry, (head, detail) in zip(entries, zip(lines[0::2], lines[1::2])):
        assert head.startswith(f"{entry['id']} {entry['version']} [{entry['task']}]"), head
        site = "any" if entry["body_site"] in ("", "any") else entry["body_site"]
        assert detail == f"    trained on: {entry['training_domain']}; body site: {site}", (entry["id"], detail)
    assert any("trained on: synthetic phantom; body site: abdomen/pancreas" in line for line in lines)
    assert any("body site: any" in line for line in lines)  # demo-seg-noattention runs on any site
