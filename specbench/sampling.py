"""Training batches drawn on the model's device (no host round trip per step).

Two schemes, chosen by the ``train_sampler`` setting:
- ``pairs``: every training row once per epoch in random order (RecBole's scheme), with
  ``neg_samples`` uniform negatives per row that are not among the user's training items.
- ``users``: the DirectSpec reference scheme (tanatosuu/directspec, ``sampling``): per step, B
  users uniformly with replacement and, for each, one of its distinct training items uniformly;
  an epoch is floor(|train| / B) steps, |train| counting every training row (a duplicated row
  counts twice, as the reference counts the rows of train.csv; the entries of ``train`` are row
  counts, as RecBole's ``inter_matrix`` sums duplicate rows). With ``neg_samples`` and
  ``last_batch="keep"`` it is SGL-Torch's PairwiseSamplerV2 (wujcan/SGL-Torch): a user uniformly,
  one of its items, uniform negatives outside its items, |train| draws per epoch, the last batch
  partial (ceil(|train| / B) steps).
Nothing here reads a value back from the device, so a CUDA training loop never waits on the sampler.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from specbench.errors import SpecbenchError

SCHEMES = ("pairs", "users")
LAST_BATCH = ("drop", "keep")  # the users scheme's partial last batch: the DirectSpec reference's, SGL-Torch's


class TrainSampler:
    def __init__(self, train: sp.csr_matrix, batch_size: int, scheme: str = "pairs", neg_samples: int = 0,
                 device="cpu", seed: int = 0, first_item: int = 1, dataset: str | None = None,
                 data_file: str | None = None, last_batch: str = "drop"):
        """``dataset`` and ``data_file`` (where ``train`` was read) name the data in the batch-size error;
        ``last_batch`` is the users scheme's (the pairs scheme always keeps RecBole's partial last batch)."""
        if scheme not in SCHEMES:
            raise SpecbenchError(f"train_sampler must be one of {SCHEMES}, got {scheme!r}")
        if last_batch not in LAST_BATCH:
            raise SpecbenchError(f"users_last_batch must be one of {LAST_BATCH}, got {last_batch!r}")
        self.last_batch = last_batch
        train = sp.csr_matrix(train, copy=True)
        train.sum_duplicates()  # one entry per (user, item): items are drawn among distinct ones
        train.eliminate_zeros()
        self.device = torch.device(device)
        self.batch_size, self.scheme, self.neg_samples = int(batch_size), scheme, int(neg_samples)
        self.n_items, self.first_item = train.shape[1], first_item
        coo = train.tocoo()
        self.rows = torch.as_tensor(coo.row, dtype=torch.long, device=self.device)
        self.cols = torch.as_tensor(coo.col, dtype=torch.long, device=self.device)
        self.n_rows = len(coo.row)
        counts = np.asarray(train.data)
        whole = len(counts) and np.all(counts >= 1) and np.all(counts == np.round(counts))
        self.n_train_rows = int(counts.sum()) if whole else self.n_rows  # duplicates included
        if self.batch_size <= 0:
            raise SpecbenchError(f"train_batch_size must be at least 1, got {batch_size}")
        if self.batch_size > self.n_train_rows:  # training rows, duplicates included
            of, where = (f" of {dataset}" if dataset else ""), (f" in {data_file}" if data_file else "")
            raise SpecbenchError(f"train_batch_size = {batch_size} is larger than the training data{of} "
                                 f"({self.n_train_rows} rows{where}); use at most {self.n_train_rows}")
        self.indptr = torch.as_tensor(train.indptr, dtype=torch.long, device=self.device)
        self.indices = torch.as_tensor(train.indices, dtype=torch.long, device=self.device)
        self.active_users = torch.as_tensor(np.flatnonzero(np.diff(train.indptr) > 0), dtype=torch.long, device=self.device)
        self.keys = torch.unique(self.rows * self.n_items + self.cols)  # sorted (user, item) codes
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)

    def steps_per_epoch(self) -> int:
        if self.scheme == "users":
            return self.n_train_rows // self.batch_size if self.last_batch == "drop" else -(-self.n_train_rows // self.batch_size)
        return -(-self.n_rows // self.batch_size)

    def _rand(self, n):
        return torch.rand(n, generator=self.generator, device=self.device)

    def negatives(self, users: torch.Tensor, rounds: int = 8) -> torch.Tensor:
        """Uniform items outside each user's training items (``rounds`` rejection passes)."""
        shape = (len(users), self.neg_samples)
        span = self.n_items - self.first_item
        neg = self.first_item + (self._rand(shape) * span).long()
        u = users.unsqueeze(1).expand(shape)
        for _ in range(rounds):
            codes = u * self.n_items + neg
            pos = torch.searchsorted(self.keys, codes).clamp_max(len(self.keys) - 1)
            clash = self.keys[pos] == codes
            neg = torch.where(clash, self.first_item + (self._rand(shape) * span).long(), neg)
        return neg.squeeze(1) if self.neg_samples == 1 else neg

    def epoch(self):
        """Yield dicts of ``user``, ``item`` (and ``neg_item``) index tensors for one epoch."""
        if self.scheme == "pairs":
            order = torch.randperm(self.n_rows, generator=self.generator, device=self.device)
            batches = order.split(self.batch_size)
            for idx in batches:
                yield self._batch(self.rows[idx], self.cols[idx])
        else:
            for step in range(self.steps_per_epoch()):
                size = min(self.batch_size, self.n_train_rows - step * self.batch_size)  # B but the kept last
                pick = torch.randint(len(self.active_users), (size,), generator=self.generator, device=self.device)
                users = self.active_users[pick]
                start, deg = self.indptr[users], self.indptr[users + 1] - self.indptr[users]
                items = self.indices[start + (self._rand(size) * deg).long()]
                yield self._batch(users, items)

    def _batch(self, users, items):
        batch = {"user": users, "item": items}
        if self.neg_samples > 0:
            batch["neg_item"] = self.negatives(users)
        return batch
