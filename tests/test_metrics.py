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


def hand_metrics(scores, train, test, ks):
    """Every metric by its definition, one user at a time in plain Python (no shared code).

    ``test`` holds test-row counts: sets for the standard metrics, rows for the reference's |T|."""
    n_items = scores.shape[1]
    per_user = {}
    for u in range(scores.shape[0]):
        truth = set(np.flatnonzero(test[u]))
        if not truth:
            continue
        candidates = [i for i in range(1, n_items) if not train[u, i]]  # item 0 is padding
        ranking = sorted(candidates, key=lambda i: -scores[u, i])
        values = {}
        for k in ks:
            hits = [r for r in range(k) if ranking[r] in truth]
            ideal = min(len(truth), k)
            values[f"recall@{k}"] = len(hits) / len(truth)
            values[f"recall_paper@{k}"] = len(hits) / ideal
            values[f"ndcg@{k}"] = dcg(hits) / dcg(range(ideal))
            values[f"precision@{k}"] = len(hits) / k
            values[f"hit@{k}"] = float(len(hits) > 0)
        # The reference's "@10": positions 0..10 (eleven), divided as a true @10.
        hits11 = [r for r in range(11) if ranking[r] in truth]
        ideal10 = min(int(test[u].sum()), 10)  # the reference's len(test_data[u]) counts duplicate rows
        values["ref_recall@10"] = len(hits11) / ideal10
        values["ref_ndcg@10"] = dcg(hits11) / dcg(range(ideal10))
        for name, v in values.items():
            per_user.setdefault(name, []).append(v)
    return {name: float(np.mean(v)) for name, v in per_user.items()}


def test_every_metric_equals_its_definition_on_a_random_example():
    rng = np.random.default_rng(4)
    n_users, n_items = 13, 40
    train = rng.random((n_users, n_items)) < 0.15
    test = (rng.random((n_users, n_items)) < 0.35) & ~train
    train[:, 0] = test[:, 0] = False
    test[0] = False  # a user without test items is not averaged
    test[1, 1:] = ~train[1, 1:]  # a user whose every candidate is a test item: ref_recall@10 = 11/10
    test = test.astype(float)
    test[2] = 0.0
    test[2, np.flatnonzero(~train[2, 1:])[:3] + 1] = [1.0, 2.0, 1.0]  # three test items, one in two rows
    scores = rng.normal(size=(n_users, n_items))
    scores[2, np.flatnonzero(test[2])] += 10.0  # ranked first: hits 3, |T| = 3, reference's |T| = 4
    ev = RankingEvaluator(sp.csr_matrix(train.astype(float)), sp.csr_matrix(test), ks=(5, 10, 20))
    got, per_user = ev.evaluate(lambda users: torch.as_tensor(scores, dtype=torch.float32)[users],
                                keep_per_user=("ref_recall@10", "recall@10"))
    expected = hand_metrics(scores, train, test, (5, 10, 20))
    assert set(got) == set(expected)
    for name in expected:
        assert math.isclose(got[name], expected[name], rel_tol=1e-6), name
    assert math.isclose(per_user["ref_recall@10"][0], 1.1, rel_tol=1e-6)  # the quirk can exceed 1
    assert per_user["recall@10"][1] == 1.0 and math.isclose(per_user["ref_recall@10"][1], 3 / 4, rel_tol=1e-6)
