"""Full-ranking top-K metrics over all items, training items masked.

Per user u with test set T_u and hits h_K = |top-K ∩ T_u|:
- ``recall@K``        = h_K / |T_u|                     (RecBole's Recall)
- ``recall_paper@K``  = h_K / min(|T_u|, K)             (the DirectSpec paper and reference code)
- ``ndcg@K``          = DCG@K / IDCG@K, IDCG over min(|T_u|, K) ideal hits (RecBole's and the paper's nDCG agree)
- ``precision@K``     = h_K / K;  ``hit@K`` = [h_K > 0]
- ``ref_recall@10`` / ``ref_ndcg@10``: compatibility only. The reference code's "@10" counts hits
  in the top 11 positions (``k <= 10`` with 0-based k) but divides as a true @10 does (by
  min(|T_u|, 10) and IDCG@min(|T_u|, 10)), so it can exceed 1; use these only beside the
  reference's numbers.
Test sets are sets: a duplicated test row counts once, except in the ``ref_*`` metrics, whose
|T_u| counts test rows as the reference does (``len(test_data[u])``; this matters only for Yelp,
whose test file has 1,589 duplicate rows). ``test`` holds row counts, as RecBole's
``inter_matrix`` sums duplicate rows.
Means are over users with at least one test item.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

COMPAT_REF_K = 10  # the reference's "@10" (scored over 11 positions)


def _csr_to_torch(m: sp.csr_matrix, device) -> tuple[torch.Tensor, torch.Tensor]:
    return (torch.as_tensor(m.indptr, dtype=torch.long, device=device),
            torch.as_tensor(m.indices, dtype=torch.long, device=device))


class RankingEvaluator:
    """Scores users in blocks and accumulates metric sums on the device (one host sync per call)."""

    def __init__(self, train: sp.csr_matrix, test: sp.csr_matrix, ks=(10, 20), device="cpu",
                 scores_per_block: int = 2**24, exclude_items=(0,)):
        self.ks = tuple(sorted(set(int(k) for k in ks)))
        self.device = torch.device(device)
        rows = np.asarray(test.tocsr().sum(axis=1)).ravel()  # test rows per user, duplicates included
        train, test = train.tocsr().astype(bool).astype(np.float32), test.tocsr().astype(bool).astype(np.float32)
        self.n_items = train.shape[1]
        self.users = torch.as_tensor(np.flatnonzero(np.diff(test.indptr) > 0), dtype=torch.long)
        self._train = _csr_to_torch(train, self.device)
        self._test = _csr_to_torch(test, self.device)
        self.n_test = torch.as_tensor(np.diff(test.indptr), dtype=torch.float32, device=self.device)
        counts_rows = np.all(rows == np.round(rows)) and np.all(rows >= np.diff(test.indptr))
        self.n_test_rows = torch.as_tensor(rows if counts_rows else np.diff(test.indptr), dtype=torch.float32,
                                           device=self.device)
        self.block = max(1, scores_per_block // self.n_items)
        self.exclude_items = torch.as_tensor(list(exclude_items), dtype=torch.long, device=self.device)
        self.k_max = max(max(self.ks), COMPAT_REF_K + 1)

    @staticmethod
    def _rows(csr, users):
        indptr, indices = csr
        start, end = indptr[users], indptr[users + 1]
        counts = end - start
        row = torch.repeat_interleave(torch.arange(len(users), device=users.device), counts)
        offs = torch.arange(int(counts.sum()), device=users.device) - torch.repeat_interleave(
            torch.cumsum(counts, 0) - counts, counts)
        return row, indices[torch.repeat_interleave(start, counts) + offs]

    def topk(self, scores: torch.Tensor, users: torch.Tensor) -> torch.Tensor:
        """Indices of the k_max best items per row, with training items and excluded ids masked."""
        scores = scores.float().clone()
        row, col = self._rows(self._train, users)
        scores[row, col] = -torch.inf
        scores[:, self.exclude_items] = -torch.inf
        return torch.topk(scores, self.k_max, dim=1).indices

    def hits(self, top: torch.Tensor, users: torch.Tensor) -> torch.Tensor:
        """hits[b, r] = 1 if the item at rank r (0-based) of user b is a test item."""
        truth = torch.zeros(len(users), self.n_items, dtype=torch.bool, device=self.device)
        row, col = self._rows(self._test, users)
        truth[row, col] = True
        return truth.gather(1, top).float()

    def per_user(self, hits: torch.Tensor, n_test: torch.Tensor, n_test_rows=None) -> dict[str, torch.Tensor]:
        """Every metric for a block of users, from their hit matrix, test-set sizes and test-row counts."""
        n_test_rows = n_test if n_test_rows is None else n_test_rows
        discount = 1.0 / torch.log2(torch.arange(hits.shape[1], device=hits.device, dtype=torch.float32) + 2.0)
        cum_discount = torch.cumsum(discount, 0)
        out = {}
        for k in self.ks:
            n_hit = hits[:, :k].sum(1)
            ideal = torch.clamp(n_test, max=k)
            dcg = (hits[:, :k] * discount[:k]).sum(1)
            out[f"recall@{k}"] = n_hit / n_test
            out[f"recall_paper@{k}"] = n_hit / ideal
            out[f"ndcg@{k}"] = dcg / cum_discount[ideal.long() - 1]
            out[f"precision@{k}"] = n_hit / k
            out[f"hit@{k}"] = (n_hit > 0).float()
        # Reference-code compatibility (directspec_mf.py `cal_score`): hits and DCG over 11 positions
        # (`k <= 10`, 0-based), divided by min(|T_u|, 10) and IDCG@min(|T_u|, 10) as for a true @10.
        p, ideal = COMPAT_REF_K + 1, torch.clamp(n_test_rows, max=COMPAT_REF_K)
        out["ref_recall@10"] = hits[:, :p].sum(1) / ideal
        out["ref_ndcg@10"] = (hits[:, :p] * discount[:p]).sum(1) / cum_discount[ideal.long() - 1]
        return out

    @torch.no_grad()
    def evaluate(self, score_users, keep_per_user: tuple[str, ...] = ()) -> tuple[dict, dict]:
        """Mean metrics over test users; ``score_users(users)`` returns a (len(users), n_items) tensor.

        Returns (means, per_user) where per_user maps each name in ``keep_per_user`` to a numpy
        array aligned with ``self.users``.
        """
        sums, kept = {}, {k: [] for k in keep_per_user}
        for start in range(0, len(self.users), self.block):
            users = self.users[start:start + self.block].to(self.device)
            top = self.topk(score_users(users), users)
            values = self.per_user(self.hits(top, users), self.n_test[users], self.n_test_rows[users])
            for name, v in values.items():
                sums[name] = sums.get(name, 0.0) + v.sum()
            for name in keep_per_user:
                kept[name].append(values[name])
        totals = torch.stack(list(sums.values())).cpu().tolist()  # the one host sync
        means = {name: total / len(self.users) for name, total in zip(sums, totals)}
        return means, {k: torch.cat(v).cpu().numpy() for k, v in kept.items()}
