"""The phantom is meaningful: classes overlap in appearance, and status clusters along chains of nodes."""

import numpy as np
import pytest
import SimpleITK as sitk

from LNStagingLib.evaluation.metrics import roc_auc
from LNStagingLib.phantom import generate_case

N_CASES = 20


def make_cohort(relations: str):
    nodes, fakes, patients = [], [], []
    for seed in range(N_CASES):
        case = generate_case(500 + seed, size="small", relations=relations)
        status = {r["node_id"]: r["label"] for r in case.candidates if r["node_id"]}
        for r in case.candidates:
            if r["node_id"]:
                parent = r["parent"]
                nodes.append({**r, "parent_label": -1 if parent == 0 else status[parent], "patient": seed})
            else:
                fakes.append(r)
        patients.append(case.metastasis)
    return nodes, fakes, np.array(patients)


@pytest.fixture(scope="module")
def cohort():
    return make_cohort("default")


def chain_probabilities(nodes) -> tuple[float, float]:
    """P(positive | parent positive), P(positive | parent negative) over nodes whose parent is a node."""
    label = np.array([n["label"] for n in nodes])
    parent = np.array([n["parent_label"] for n in nodes])
    assert (parent == 1).sum() >= 10 and (parent == 0).sum() >= 10
    return label[parent == 1].mean(), label[parent == 0].mean()


def test_positive_share_and_patient_rate(cohort):
    nodes, _, patients = cohort
    label = np.array([n["label"] for n in nodes])
    assert 0.1 <= label.mean() <= 0.4, label.mean()
    assert 0.3 <= patients.mean() <= 0.85, patients.mean()
    assert 5 <= len(nodes) / N_CASES <= 30


def test_positives_cluster_along_chains(cohort):
    p_after_positive, p_after_negative = chain_probabilities(cohort[0])
    assert p_after_positive > p_after_negative + 0.2, (p_after_positive, p_after_negative)


def test_strong_relations_make_status_follow_the_neighbours(cohort):
    """--relations strong: chains of positives, few skips, and one phenotype per patient's metastases."""
    nodes, _, _ = make_cohort("strong")
    strong_pos, strong_neg = chain_probabilities(nodes)
    default_pos, default_neg = chain_probabilities(cohort[0])
    assert strong_pos > default_pos + 0.1 and strong_pos > 0.7, (strong_pos, default_pos)
    assert strong_neg < 0.1, strong_neg
    strong_spread, default_spread = within_patient_suv_spread(nodes), within_patient_suv_spread(cohort[0])
    assert strong_spread < 0.8 * default_spread, (strong_spread, default_spread)


def within_patient_suv_spread(nodes) -> float:
    """Mean over patients (>= 2 positive nodes) of the SD of log SUVmax of their positive nodes."""
    by_patient: dict = {}
    for n in nodes:
        if n["label"]:
            by_patient.setdefault(n["patient"], []).append(n["suv_max"])
    spreads = [np.std(np.log(v)) for v in by_patient.values() if len(v) >= 2]
    assert len(spreads) >= 5
    return float(np.mean(spreads))


def test_appearance_overlaps_between_classes(cohort):
    nodes, fakes, _ = cohort
    label = np.array([n["label"] for n in nodes])
    suv = np.array([n["suv_max"] for n in nodes])
    diameter = np.array([n["diameter_mm"] for n in nodes])
    pos, neg = suv[label == 1], suv[label == 0]
    assert np.median(pos) > np.median(neg), "uptake is informative"
    assert np.percentile(pos, 25) < np.percentile(neg, 90), "low-avid or small hot (blurred) positives overlap negatives"
    assert 0.6 < roc_auc(label, suv) < 0.95, "SUVmax alone does not separate the classes"
    assert (diameter[label == 1] < 8).any() and (diameter[label == 0] > 12).any(), "small positives and large negatives"
    fake_suv = np.array([f["suv_max"] for f in fakes])
    assert (fake_suv > np.median(pos)).any(), "some look-alikes are as hot as a typical positive node"
    assert {f["kind"] for f in fakes} == {"vessel", "bowel", "hot_spot"}


def look_alike_attention(look_alikes: str, n_cases: int = 6) -> np.ndarray:
    """Paper 2's attention at the centre of every look-alike of ``n_cases`` small phantoms."""
    from LNStagingLib.anatomy.structures import OrganLabels, map_structures
    from LNStagingLib.dataset.format import PDAC20_LABELS
    from LNStagingLib.priors.attention import attention_map

    values = []
    for seed in range(n_cases):
        case = generate_case(700 + seed, size="small", look_alikes=look_alikes)
        structures = map_structures(OrganLabels(case.organs, dict(PDAC20_LABELS)), "pdac20")
        attention = attention_map(structures.image)
        array = sitk.GetArrayFromImage(attention)
        for row in case.candidates:
            if not row["node_id"]:
                i, j, k = attention.TransformPhysicalPointToIndex((row["x"], row["y"], row["z"]))
                values.append(array[k, j, i])
    return np.asarray(values)


def test_spread_look_alikes_lie_where_attention_is_zero():
    """--look-alikes spread puts about half the false candidates beyond the attention bands; near keeps them inside."""
    near, spread = look_alike_attention("near"), look_alike_attention("spread")
    assert np.mean(near == 0) < 0.1, np.mean(near == 0)
    assert np.mean(spread == 0) > 0.3, np.mean(spread == 0)
