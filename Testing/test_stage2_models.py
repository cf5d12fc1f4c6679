"""Stage-2 networks: ROI-GAP, feature sizes, GNNp/GNNb against eq. 4-7, checkpoints, determinism, a relational toy."""

import numpy as np
import pytest
import torch

from LNStagingLib.models.checkpoint import load_model, save_checkpoint
from LNStagingLib.models.gnn import G, GNNb, GNNConfig, GNNp, InstanceHead
from LNStagingLib.models.roi_cnn import RoiCNN, roi_cnn_config, roi_gap
from LNStagingLib.models.stage2 import Stage2Model, stage2_config

PRIORS = ("x", "y", "z", "distance", "elevation", "azimuth")


def exact():
    """PyTorch's native convolutions: bit-reproducible (oneDNN may pick other kernels from call to call)."""
    return torch.backends.mkldnn.flags(enabled=False)


def _patches(n, seed=0, channels=2, size=48):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, channels, size, size, size, generator=g)
    masks = torch.zeros(n, 1, size, size, size)
    masks[:, :, 20:29, 18:30, 21:27] = 1
    return images, masks, torch.rand(n, len(PRIORS), generator=g)


def test_roi_gap_matches_hand_computation():
    features = torch.arange(2 * 4 * 4 * 4, dtype=torch.float32).reshape(1, 2, 4, 4, 4)
    mask = torch.zeros(1, 1, 8, 8, 8)
    mask[0, 0, 0:2, 0:2, 0:2] = 1  # fully covers coarse voxel (0, 0, 0)
    mask[0, 0, 2:4, 0:2, 0:1] = 1  # half covers coarse voxel (1, 0, 0)
    expected = (features[0, :, 0, 0, 0] * 1.0 + features[0, :, 1, 0, 0] * 0.5) / 1.5
    assert torch.allclose(roi_gap(features, mask)[0], expected)
    # An empty mask falls back to the plain global average, not a division by zero.
    assert torch.allclose(roi_gap(features, torch.zeros(1, 1, 8, 8, 8))[0], features[0].mean(dim=(1, 2, 3)))


@pytest.mark.parametrize("preset", ["tiny", "small"])
def test_f_has_four_times_feature_dim(preset):
    config = roi_cnn_config(preset, in_channels=2)
    cnn = RoiCNN(config).eval()
    images, masks, _ = _patches(3)
    logits, f = cnn(images, masks)
    assert f.shape == (3, 4 * config.feature_dim) and logits.shape == (3,)
    assert roi_cnn_config("paper").f_dim == 1024


def test_paper_dimensions():
    model = Stage2Model(stage2_config("paper", head="gnnp", prior_names=PRIORS))
    assert model.head.nodes.T[-2].out_features == 640
    assert model.head.phi_e.first.in_features == 3328 and model.head.phi_e.first.out_features == 256
    assert model.head.nodes.phi_h[0].in_features == 1024 and model.head.nodes.phi_h[0].out_features == 256


def _gnn_config(**kw):
    return GNNConfig(**{"f_dim": 12, "prior_dim": 6, "t_dim": 5, "h_dim": 7, "msg_dim": 6, "aggregation": "sum", **kw})


def test_gnnp_messages_have_the_right_shapes_and_equal_explicit_pair_fusion():
    torch.manual_seed(0)
    gnn = GNNp(_gnn_config()).eval()
    f, s = torch.randn(5, 12), torch.randn(5, 6)
    x, h = gnn.nodes(f, s)
    assert x.shape == (5, 12 + 5) and h.shape == (5, 7)
    pair = gnn.phi_e(x)
    assert pair.shape == (5, 5, 6)
    for u in range(5):  # eq. 6 computed literally: m_u = sum_v phi_e(G(x_u, x_v))
        explicit = sum(gnn.phi_e.forward_pair(G(x[u], x[v])) for v in range(5))
        assert torch.allclose(gnn.messages(x)[u], explicit, atol=1e-5)
    assert gnn(f, s).shape == (5,)


@pytest.mark.parametrize("cls", [GNNp, GNNb])
def test_graph_heads_are_permutation_equivariant(cls):
    torch.manual_seed(1)
    gnn = cls(_gnn_config(gat_heads=2)).eval()
    f, s = torch.randn(7, 12), torch.randn(7, 6)
    perm = torch.randperm(7)
    with torch.no_grad():
        assert torch.allclose(gnn(f, s)[perm], gnn(f[perm], s[perm]), atol=1e-5)


@pytest.mark.parametrize("head", ["cnn", "gnnb", "gnnp"])
def test_one_candidate_patient_and_heads_run(head):
    torch.manual_seed(2)
    model = Stage2Model(stage2_config("tiny", head=head, prior_names=PRIORS)).eval()
    images, masks, priors = _patches(1)
    with torch.no_grad():
        out = model(images, masks, priors)
    assert out.shape == (1,) and torch.isfinite(out).all()


def test_gnnb_uses_gatconv():
    from torch_geometric.nn import GATConv

    model = Stage2Model(stage2_config("tiny", head="gnnb", prior_names=PRIORS))
    assert isinstance(model.head.phi_e, GATConv)


def test_ablation_flags_change_inputs():
    ct_only = Stage2Model(stage2_config("tiny", head="gnnp", use_pet=False, use_priors=False))
    assert ct_only.cnn.stem[0].in_channels == 1 and ct_only.head.nodes.T is None
    images, masks, _ = _patches(2)
    with torch.no_grad():
        assert ct_only.eval()(images, masks).shape == (2,)  # extra PET channel is dropped, no priors needed
    with_pet = Stage2Model(stage2_config("tiny", head="gnnp", prior_names=PRIORS))
    assert with_pet.cnn.stem[0].in_channels == 2


def test_checkpoint_round_trip_gives_identical_probabilities(tmp_path):
    torch.manual_seed(3)
    config = stage2_config("tiny", head="gnnp", prior_names=PRIORS, prior_mean=(0.5,) * 6, prior_std=(0.2,) * 6)
    model = Stage2Model(config).eval()
    images, masks, priors = _patches(4)
    with torch.no_grad(), exact():
        before = torch.sigmoid(model(images, masks, priors))
    save_checkpoint(tmp_path / "m.pt", model, config, training_data={"cases": 2})
    loaded, loaded_config, _ = load_model(tmp_path / "m.pt")
    assert loaded_config == config
    with torch.no_grad(), exact():
        after = torch.sigmoid(loaded(images, masks, priors))
    assert torch.equal(before, after)


def test_same_seed_same_weights_same_outputs():
    outs = []
    for _ in range(2):
        torch.manual_seed(7)
        model = Stage2Model(stage2_config("tiny", head="gnnb", prior_names=PRIORS)).eval()
        images, masks, priors = _patches(3, seed=5)
        with torch.no_grad(), exact():
            outs.append(model(images, masks, priors))
    assert torch.equal(outs[0], outs[1])


def _relational_cohort(n_patients, seed):
    """Each patient: 3-6 nodes with noise features; half the patients hold one 'signal' node (f[0] += 4).
    Every node of a signal patient is positive: a node's label depends on its neighbours, not on itself."""
    rng = np.random.default_rng(seed)
    cohort = []
    for _ in range(n_patients):
        n = int(rng.integers(3, 7))
        f = rng.normal(size=(n, 8)).astype(np.float32)
        flag = int(rng.integers(0, 2))
        if flag:
            f[rng.integers(0, n), 0] += 4.0
        cohort.append((torch.from_numpy(f), torch.full((n,), float(flag))))
    return cohort


def _fit_and_score(head, train, test, steps=600):
    opt = torch.optim.Adam(head.parameters(), lr=1e-2)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    for step in range(steps):
        f, y = train[step % len(train)]
        opt.zero_grad()
        loss_fn(head(f), y).backward()
        opt.step()
    head.eval()
    with torch.no_grad():
        correct = sum(int(((head(f) > 0).float() == y).sum()) for f, y in test)
    return correct / sum(len(y) for _, y in test)


def test_gnnp_learns_a_neighbour_dependent_label_that_the_instance_classifier_cannot():
    torch.manual_seed(0)
    train, test = _relational_cohort(80, seed=1), _relational_cohort(60, seed=2)
    config = GNNConfig(f_dim=8, prior_dim=0, use_priors=False, h_dim=16, msg_dim=16, aggregation="sum")
    gnnp_accuracy = _fit_and_score(GNNp(config), train, test)
    torch.manual_seed(0)
    instance_accuracy = _fit_and_score(InstanceHead(config), train, test)
    assert gnnp_accuracy >= 0.85, gnnp_accuracy  # 0.92 with this seed
    assert instance_accuracy <= 0.7, instance_accuracy  # 0.56: chance for all but the signal nodes


def test_a_prior_the_network_never_saw_in_training_enters_as_missing():
    """A classifier trained while z_norm was missing on every case (fitted mean 0, sd 1 exactly; the demo classifier
    before issue 17): feeding z would be outside its training data, so it enters as missing, as in training. The
    current demo classifier was trained on phantoms that all have z, and uses it."""
    import torch

    from LNStagingLib.models.checkpoint import load_model
    from LNStagingLib.models.stage2 import Stage2Model, stage2_config

    names = ("x_norm", "y_norm", "z_norm")
    torch.manual_seed(0)
    probe = stage2_config("tiny", head="gnnp", prior_names=names)
    f = torch.randn(5, probe.feature_dim * len(probe.widths))
    priors = torch.rand(5, 3)
    without_z = priors.clone()
    without_z[:, 2] = float("nan")
    for config in (stage2_config("tiny", head="gnnp", prior_names=names, prior_mean=(0.4, 0.4, 0.0),
                                 prior_std=(0.2, 0.2, 1.0)),  # an older checkpoint: inferred from mean 0 / sd 1
                   stage2_config("tiny", head="gnnp", prior_names=names, prior_mean=(0.4, 0.4, 0.3),
                                 prior_std=(0.2, 0.2, 0.1), prior_trained=(True, True, False))):
        model = Stage2Model(config).eval()
        with torch.no_grad():
            assert torch.equal(model.head_logits(torch.zeros(5), f, priors), model.head_logits(torch.zeros(5), f, without_z))
    seen = Stage2Model(stage2_config("tiny", head="gnnp", prior_names=names, prior_mean=(0.4, 0.4, 0.3),
                                     prior_std=(0.2, 0.2, 0.1))).eval()
    with torch.no_grad():
        assert not torch.equal(seen.head_logits(torch.zeros(5), f, priors), seen.head_logits(torch.zeros(5), f, without_z))
    demo, config, _ = load_model("Resources/models/demo-cls.pt")
    assert config.prior_names[2] == "z_norm" and bool(demo.prior_trained[2]) and bool(demo.prior_trained[0])
