"""The training samplers (specbench/sampling.py) against their definitions, statistically where they
are random. Tolerances come from the sampling distributions: a correct sampler fails a check with
probability below 1e-6 (chi-square and binomial tail bounds), and the seed is fixed."""

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy import stats

from specbench.errors import SpecbenchError
from specbench.sampling import TrainSampler

P_FAIL = 1e-6


def skewed_matrix(n_items=40):
    """Row 0 is RecBole's padding; user u (1..20) has u distinct items; user 21 has none; one duplicated row."""
    n_users = 22
    rows, cols = [], []
    rng = np.random.default_rng(0)
    for u in range(1, 21):
        items = rng.choice(np.arange(1, n_items), size=u, replace=False)
        rows += [u] * u
        cols += list(items)
    rows.append(5), cols.append(cols[rows.index(5)])  # user 5's first item twice (two rows in train)
    m = sp.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_users, n_items)).tocsr()  # sums the duplicate
    return m, len(rows)


def test_user_sampler_epoch_is_floor_of_training_rows_over_batch():
    m, n_rows = skewed_matrix()
    assert n_rows == sum(range(1, 21)) + 1
    for batch in (7, 16, 211):
        sampler = TrainSampler(m, batch, "users")
        assert sampler.steps_per_epoch() == n_rows // batch
        assert sum(1 for _ in sampler.epoch()) == n_rows // batch
        assert all(len(b["user"]) == batch and len(b["item"]) == batch for b in sampler.epoch())


def test_user_sampler_keeping_the_last_batch_draws_every_training_row_count_once_per_epoch():
    """SGL-Torch's PairwiseSamplerV2: |train| draws an epoch in batches of B, the last one partial."""
    m, n_rows = skewed_matrix()
    for batch in (7, 16, 211):
        sampler = TrainSampler(m, batch, "users", neg_samples=1, last_batch="keep")
        sizes = [len(b["user"]) for b in sampler.epoch()]
        assert sampler.steps_per_epoch() == len(sizes) == -(-n_rows // batch)
        assert sum(sizes) == n_rows and sizes[:-1] == [batch] * (len(sizes) - 1)
        assert sizes[-1] == (n_rows % batch or batch)
    with pytest.raises(SpecbenchError, match="users_last_batch must be one of"):
        TrainSampler(m, 7, "users", last_batch="partial")


def test_users_are_uniform_with_replacement_and_items_uniform_per_user():
    m, _ = skewed_matrix()
    batch, n_batches = 10, 3000
    sampler = TrainSampler(m, batch, "users", seed=1)
    users, items, with_repeat = [], [], 0
    it = iter(())
    for _ in range(n_batches):
        b = next(it, None)
        if b is None:
            it = iter(sampler.epoch())
            b = next(it)
        u, i = b["user"].numpy(), b["item"].numpy()
        users.append(u), items.append(i)
        with_repeat += len(set(u.tolist())) < batch
    users, items = np.concatenate(users), np.concatenate(items)
    dense = m.toarray()
    assert np.all(dense[users, items] > 0)  # every draw is a training pair
    assert set(users) == set(range(1, 21))  # never the padding user 0 nor the user without items

    # Users: uniform over the 20 users with training items, whatever their degree.
    counts = np.bincount(users, minlength=21)[1:]
    chi2 = stats.chisquare(counts).statistic
    assert chi2 < stats.chi2.ppf(1 - P_FAIL, df=19)
    # Items given the user: uniform over the user's distinct items (the duplicated row counts once).
    stat, dof = 0.0, 0
    for u in range(1, 21):
        own = np.flatnonzero(dense[u])
        if len(own) > 1:
            c = np.array([(items[users == u] == i).sum() for i in own])
            stat += stats.chisquare(c).statistic
            dof += len(own) - 1
    assert stat < stats.chi2.ppf(1 - P_FAIL, df=dof)
    # With replacement: a batch of 10 among 20 users repeats someone with probability 1 - 20!/(10! 20^10).
    p_repeat = 1 - math.perm(20, batch) / 20 ** batch
    lo, hi = stats.binom.ppf([P_FAIL / 2, 1 - P_FAIL / 2], n_batches, p_repeat)
    assert lo <= with_repeat <= hi


def test_same_seed_same_batches():
    m, _ = skewed_matrix()
    a = [b["item"] for b in TrainSampler(m, 8, "users", seed=3).epoch()]
    b = [b["item"] for b in TrainSampler(m, 8, "users", seed=3).epoch()]
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_pair_sampler_visits_every_row_once_with_negatives_outside_training():
    m, _ = skewed_matrix(n_items=2000)  # 8 rejection rounds leave a clash with probability < (20/1999)^9
    sampler = TrainSampler(m, 16, "pairs", neg_samples=1, seed=2)
    seen = []
    for b in sampler.epoch():
        seen += list(zip(b["user"].tolist(), b["item"].tolist()))
        assert np.all(m.toarray()[b["user"].numpy(), b["neg_item"].numpy()] == 0)
        assert np.all(b["neg_item"].numpy() >= 1)
    assert sorted(seen) == sorted(zip(*m.nonzero()))
    assert sampler.steps_per_epoch() == math.ceil(m.nnz / 16)


def test_the_user_sampler_draws_negatives_for_a_pairwise_model():
    """SGL-Torch's PairwiseSamplerV2: a uniform user, one of its items, and a negative outside its items.
    A pairwise model (SGL) under `train_sampler: users` gets one negative per row, as under `pairs`."""
    from recbole.model.general_recommender import BPR
    from specbench.harness import negatives_per_row
    from specbench.plugins import get_model
    m, _ = skewed_matrix()
    dense = m.toarray()
    sampler = TrainSampler(m, 10, "users", neg_samples=1, seed=2)
    for b in sampler.epoch():
        u, neg = b["user"].numpy(), b["neg_item"].numpy()
        assert np.all(dense[u, neg] == 0) and np.all(neg >= 1)
    assert negatives_per_row(BPR, {"train_sampler": "users"}) == 1
    assert negatives_per_row(get_model("DirectSpecPlus").cls, {"train_sampler": "users"}) == 0
    assert get_model("SGLAdapter").defaults()["train_sampler"] == "users"


def test_lightgcn_bpr_draws_batches_as_the_lightgcn_authors_sampler(ml100k_small, tmp_path):
    """BPR on LightGCN (LightGCNAdapter at its yaml defaults, as a study resolves it) samples as
    gusye1234/LightGCN-PyTorch's UniformSample_original: |train| draws an epoch, each a user uniformly
    over the users with training items (not in proportion to their degree, RecBole's row sampler), one of
    its items and a negative outside them, in batches of B with the partial last one kept. On CiteULike
    RecBole's row sampler left ours 5-9% below the authors' code (results/reference/peer-check)."""
    from specbench.harness import build
    from specbench.settings import resolve
    from tests.helpers import make_spec
    spec = make_spec(ml100k_small, "LightGCNAdapter", backbone="lightgcn", train_batch_size=256)
    resolved = resolve(spec)
    h = build(spec, resolved.entry, resolved.settings, tmp_path)
    train = h.train_matrix.toarray()
    n_rows, degree = int(train.sum()), train.sum(axis=1)
    active = np.flatnonzero(degree)
    span = train.shape[1] - 1  # item 0 is RecBole's padding
    assert h.sampler.steps_per_epoch() == math.ceil(n_rows / 256)
    users, clashes, expected_clashes = [], 0, 0.0
    for _ in range(20):
        sizes = []
        for b in h.sampler.epoch():
            u, i = b["user"].numpy(), b["item"].numpy()
            j = b["neg_item"].numpy().reshape(len(u), -1)
            assert j.shape[1] == 1 and np.all(train[u, i] > 0) and np.all(j >= 1)
            clashes += int((train[u[:, None], j] > 0).sum())
            expected_clashes += float(((degree[u] / span) ** 9).sum())  # 1 draw + 8 rejection rounds
            sizes.append(len(u)), users.append(u)
        assert sum(sizes) == n_rows and sizes[:-1] == [256] * (len(sizes) - 1)
    counts = np.bincount(np.concatenate(users), minlength=train.shape[0])[active]
    dof = len(active) - 1
    assert stats.chisquare(counts).statistic < stats.chi2.ppf(1 - P_FAIL, df=dof)  # uniform over users
    by_degree = counts.sum() * degree[active] / degree[active].sum()  # what RecBole's row sampler gives
    assert stats.chisquare(counts, by_degree).statistic > stats.chi2.ppf(1 - P_FAIL, df=dof)
    # Negatives outside the user's items, but for what 8 rejection rounds leave (Poisson tail bound).
    assert clashes <= stats.poisson.ppf(1 - P_FAIL, expected_clashes)
