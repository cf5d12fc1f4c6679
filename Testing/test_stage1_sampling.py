"""Patch sampling: at least a third foreground, informative negatives only where attention > 0, deterministic."""

import numpy as np

from LNStagingLib.training.sampling import PatchSampler, TrainingCase

PATCH = (8, 16, 16)


def _case(seed=0, shape=(40, 64, 64)):
    rng = np.random.default_rng(seed)
    label = np.zeros(shape, bool)
    label[30:33, 50:54, 50:54] = True  # one small node
    attention = np.zeros((1, *shape), np.float32)
    attention[0, 20:36, 40:60, 40:60] = 0.01 + rng.random(attention[0, 20:36, 40:60, 40:60].shape)  # around it
    channels = rng.normal(size=(1, *shape)).astype(np.float32)
    return TrainingCase.build("a", channels, attention, label, PATCH, [-1.0], seed=seed)


def test_foreground_fraction_and_informative_negatives():
    case = _case()
    sampler = PatchSampler([case], PATCH, batch_size=6, informative_negatives=True)
    rng = np.random.default_rng(0)
    for _ in range(20):
        x, attention, label = sampler.batch(rng)
        assert x.shape == (6, 1, *PATCH) and attention.shape == (6, 1, *PATCH) and label.shape == (6, 1, *PATCH)
        has_fg = label.reshape(6, -1).any(axis=1)
        assert has_fg.sum() >= 2  # at least a third
        assert (attention.reshape(6, -1) > 0).any(axis=1).all()  # every patch is informative


def test_ablation_draws_uninformative_negatives_and_is_deterministic():
    case = _case()
    sampler = PatchSampler([case], PATCH, batch_size=3, informative_negatives=False)
    empty = 0
    for _ in range(30):
        _, attention, _ = sampler.batch(np.random.default_rng(_))
        empty += int((attention[:2].reshape(2, -1) == 0).all(axis=1).sum())
    assert empty > 10  # most of the volume has no attention
    a = sampler.batch(np.random.default_rng(5))
    b = sampler.batch(np.random.default_rng(5))
    assert all(np.array_equal(u, v) for u, v in zip(a, b))


def test_small_volumes_are_padded():
    case = _case(shape=(6, 12, 30))
    assert case.label.shape == (8, 16, 30) and case.channels[0, 7, 0, 0] == -1.0 and case.attention[0, 7, 0, 0] == 0
    x, _, _ = PatchSampler([case], PATCH, 2).batch(np.random.default_rng(0))
    assert x.shape == (2, 1, *PATCH)
