"""AFDGCF (models/decorrelation.py) against its loss written out again here."""

import math

import numpy as np
import pytest
import torch

from specbench.run import run
from specbench_models import decorrelation
from tests.helpers import batch, leaf_tables, tiny_adjacency, tiny_graph, tiny_model

N_USERS = tiny_graph().num("user_id")  # 4: RecBole's user count, padding included

USERS, POS, NEG = [1, 3, 1, 2], [2, 4, 5, 3], [3, 2, 4, 1]


def pearson_offdiag_norm(h):
    """sqrt(Σ_{a<b} r_ab²) with r_ab the Pearson correlation of columns a and b, term by term."""
    n, d = h.shape
    cols = [h[:, a] - h[:, a].mean() for a in range(d)]
    total = 0
    for a in range(d):
        for b in range(a + 1, d):
            r = (cols[a] * cols[b]).sum() / torch.sqrt((cols[a] ** 2).sum() * (cols[b] ** 2).sum())
            total = total + r ** 2
    return torch.sqrt(total)


def test_correlation_norm_hand_computed():
    # columns (1, 2, 3) and (2, 4, 7): deviations (-1, 0, 1), (-7/3, -1/3, 8/3); cov 5, variances 2, 114/9
    h = torch.tensor([[1.0, 2.0], [2.0, 4.0], [3.0, 7.0]], dtype=torch.float64)
    assert decorrelation.correlation_norm(h).item() == pytest.approx(5 / math.sqrt(2 * 114 / 9), rel=1e-12)
    independent = torch.tensor([[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]])
    assert decorrelation.correlation_norm(independent).item() == pytest.approx(0.0, abs=1e-7)


def test_afdgcf_loss_is_the_paper_formula():
    model = tiny_model("AFDGCF", n_layers=2, alpha=0.3, reg_weight=0.01)
    loss = model.calculate_loss(batch(USERS, POS, NEG))
    loss.backward()
    a, e = tiny_adjacency(), leaf_tables(model)
    layers = [e, a @ e, a @ a @ e]
    final = sum(layers) / 3  # LightGCN: mean of layers 0..K
    hu, hi = final[:N_USERS], final[N_USERS:]
    bpr = sum(-torch.log(torch.sigmoid(hu[u] @ hi[p] - hu[u] @ hi[n])) for u, p, n in zip(USERS, POS, NEG)) / 4
    eu, ei = e[:N_USERS], e[N_USERS:]
    reg = (eu[USERS].pow(2).sum() + ei[POS].pow(2).sum() + ei[NEG].pow(2).sum()) / 2 / 4
    penalty = 0
    for side in (slice(0, N_USERS), slice(N_USERS, None)):
        c = [pearson_offdiag_norm(h[side]) for h in layers[1:]]  # propagation layers only
        inv = [1 / x.item() for x in c]  # adaptive weights: constants, no gradient
        penalty = penalty + sum(w / sum(inv) * x for w, x in zip(inv, c))
    want = bpr + 0.01 * reg + 0.3 * penalty
    want.backward()
    assert loss.item() == pytest.approx(want.item(), rel=1e-5)
    w = torch.cat([model.encoder.user_embedding.weight.grad, model.encoder.item_embedding.weight.grad])
    assert torch.isfinite(w).all()
    assert torch.allclose(w.double(), e.grad, atol=1e-5), (w.double() - e.grad).abs().max()
    scores = model.full_sort_predict(batch([2], [1], [1])).double()
    assert torch.allclose(scores, (hu[2] @ hi.t()).detach(), atol=1e-6)


def test_afdgcf_needs_propagation_layers():
    with pytest.raises(ValueError, match="needs backbone lightgcn"):
        tiny_model("AFDGCF", backbone="mf")


def test_afdgcf_trains_and_beats_popularity(spec_for, tmp_path, popularity_metrics):
    spec = spec_for("AFDGCF", backbone="lightgcn", epochs=6, eval_step=6, eval_at_start=False, learning_rate=0.01)
    spec["params"]["backbone"] = "lightgcn"
    record = run(spec, tmp_path / "runs" / "AFDGCF.json")
    assert all(np.isfinite(e["loss"]) for e in record["epochs"])
    assert record["final"]["metrics"]["ndcg@20"] > popularity_metrics["ndcg@20"]
