import math

import numpy as np
import scipy.sparse as sp
import torch

from specbench.metrics import RankingEvaluator


def dcg(positions):
    return sum(1 / math.log2(p + 2) for p in positions)


def test_metrics_equal_hand_computation():
    # 3 users (row 0 is RecBole's padding user), 25 items (item 0 is padding).
    n_items = 25
    train = sp.csr_matrix(([1, 1], ([1, 2], [1, 2])), shape=(4, n_items))
    test_items = {1: [3, 5, 24], 2: list(range(3, 24)), 3: [9]}
    rows = [u for u, items in test_items.items() for _ in items]
    cols = [i for items in test_items.values() for i in items]
    test = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(4, n_items))
    # Scores: item i scores -i, so the ranking is 1, 2, 3, ... minus masked items.
    scores = -torch.arange(n_items, dtype=torch.float32).expand(4, -1)
    ev = RankingEvaluator(train, test, ks=(10, 20))
    means, per_user = ev.evaluate(lambda users: scores[users], keep_per_user=("recall@10", "ndcg@20", "recall_paper@20"))

    # user 1: item 1 masked (train), item 0 padding: ranking 2,3,4,...  hits 3 at rank 1, 5 at rank 3; 24 at rank 22
    # user 2: ranking 1,3,4,...: items 3..23 are test; positions 1..20 all hit within top 20
    # user 3: ranking 1,2,3,...: 9 at rank 8
    exp_recall10 = [2 / 3, 9 / 21, 1.0]
    exp_ndcg20 = [dcg([1, 3]) / dcg(range(3)), dcg(range(1, 20)) / dcg(range(20)), dcg([8]) / dcg([0])]
    exp_recall_paper20 = [2 / 3, 19 / 20, 1.0]
    np.testing.assert_allclose(per_user["recall@10"], exp_recall10, rtol=1e-6)
    np.testing.assert_allclose(per_user["ndcg@20"], exp_ndcg20, rtol=1e-6)
    np.testing.assert_allclose(per_user["recall_paper@20"], exp_recall_paper20, rtol=1e-6)
    assert math.isclose(means["recall@10"], np.mean(exp_recall10), rel_tol=1e-6)
    assert math.isclose(means["hit@10"], 1.0)
    assert math.isclose(means["precision@10"], (2 + 9 + 1) / 30, rel_tol=1e-6)


def test_reference_compat_at_10_scans_eleven_positions():
    # One user, test item at 0-based rank 10: outside a true top-10, inside the reference's "@10".
    n_items = 30
    train = sp.csr_matrix((2, n_items))
    test = sp.csr_matrix(([1.0], ([1], [11])), shape=(2, n_items))
    scores = -torch.arange(n_items, dtype=torch.float32).expand(2, -1)  # ranking 1, 2, ..., item 11 at rank 10
    means, _ = RankingEvaluator(train, test).evaluate(lambda users: scores[users])
    assert means["recall@10"] == 0.0 and means["ndcg@10"] == 0.0
    assert math.isclose(means["ref_recall@10"], 1.0)
    assert math.isclose(means["ref_ndcg@10"], 1 / math.log2(12), rel_tol=1e-6)


def test_blocks_do_not_change_the_result():
    rng = np.random.default_rng(0)
    train = sp.random(60, 80, density=0.1, random_state=1, format="csr")
    test = sp.random(60, 80, density=0.05, random_state=2, format="csr")
    scores = torch.as_tensor(rng.normal(size=(60, 80)), dtype=torch.float32)
    whole, _ = RankingEvaluator(train, test).evaluate(lambda u: scores[u])
    blocked, _ = RankingEvaluator(train, test, scores_per_block=80 * 7).evaluate(lambda u: scores[u])
    assert whole.keys() == blocked.keys()
    for k in whole:
        assert math.isclose(whole[k], blocked[k], rel_tol=1e-6), k
