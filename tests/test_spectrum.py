"""Spectrum diagnostics against closed forms on matrices whose singular values are known."""

import math

import torch

from specbench.spectrum import (alignment, effective_rank, information_abundance, spectrum_record, stable_rank,
                                uniformity)


def test_ranks_of_known_spectra():
    flat = torch.ones(8)
    assert math.isclose(effective_rank(flat), 8.0, rel_tol=1e-9)       # all directions equal: full rank
    spike = torch.tensor([1.0] + [0.0] * 7)
    assert math.isclose(effective_rank(spike), 1.0, rel_tol=1e-9)      # complete collapse
    s = torch.tensor([3.0, 1.0])
    assert math.isclose(effective_rank(s), math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25))), rel_tol=1e-9)
    assert math.isclose(stable_rank(s), (9 + 1) / 9, rel_tol=1e-9)
    assert math.isclose(information_abundance(s), 4 / 3, rel_tol=1e-9)


def test_alignment_and_uniformity_closed_forms():
    u = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    i = torch.tensor([[0.0, 3.0], [0.0, 1.0]])
    # normalised: (1,0) vs (0,1): distance² 2; (0,1) vs (0,1): 0
    assert math.isclose(alignment(u, i), 1.0, rel_tol=1e-6)
    square = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    # 6 pairs: 4 at distance² 2, 2 at distance² 4
    expected = math.log((4 * math.exp(-4) + 2 * math.exp(-8)) / 6)
    assert math.isclose(uniformity(square), expected, rel_tol=1e-9)


class _Tables(torch.nn.Module):
    def __init__(self, users, items):
        super().__init__()
        self.user_embedding = torch.nn.Embedding.from_pretrained(users)
        self.item_embedding = torch.nn.Embedding.from_pretrained(items)

    def forward(self, user, item):  # MF-style forward with arguments: tables are read instead
        raise AssertionError("not called")


def test_record_uses_the_tables_and_drops_padding():
    torch.manual_seed(0)
    users, items = torch.randn(11, 4), torch.randn(21, 4)
    record = spectrum_record(_Tables(users, items), (torch.tensor([1, 2]), torch.tensor([3, 4])))
    joint = torch.linalg.svdvals(torch.cat([users[1:], items[1:]]))
    assert all(math.isclose(a, float(b), rel_tol=1e-5) for a, b in zip(record["singular_values"], joint))
    assert math.isclose(record["alignment"], alignment(users[[1, 2]], items[[3, 4]]), rel_tol=1e-6)
    assert record["seconds"] >= 0 and 1 <= record["erank"] <= 4
