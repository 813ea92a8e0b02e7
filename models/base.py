"""The base class of the embedding methods here: what a method provides, and the shared encoder it gets.

A method is a RecBole ``GeneralRecommender``; deriving from ``EncoderRecommender`` gives it

- ``self.encoder``: a ``backbones.Encoder`` (free user and item tables, MF or LightGCN), built
  from the settings ``embedding_size``, ``backbone``, ``n_layers``, ``init`` and the training
  matrix (RecBole's ``dataset.inter_matrix``), for ``self.n_users`` x ``self.n_items`` ids;
- ``predict`` and ``full_sort_predict`` (``backbones.InnerProductScores``): inner products of
  ``scoring_embeddings()``, computed once per evaluation and reused across blocks of users;
- ``backbones``: the backbones the class runs on, ("mf", "lightgcn") unless it narrows them.

and asks of it

- ``calculate_loss(interaction)`` (required): the training loss of one batch (RecBole
  ``Interaction`` with ``self.USER_ID``, ``self.ITEM_ID`` and, for ``InputType.PAIRWISE``
  models under negative sampling, ``self.NEG_ITEM_ID``);
- ``scoring_embeddings()`` -> (users, items): the raw representations it scores with, all users
  x d and all items x d (default: the encoder's output). The spectrum diagnostics read them too;
- ``on_epoch_start(epoch)`` (optional, 1-based epoch): called by the harness before each
  training epoch when the model has it (``if hasattr(model, "on_epoch_start")``), e.g. for a
  clustering E-step. Not defined here, so a model without one is never called.

Backbones are declared once, by the class attribute ``backbones``. A model whose yaml has a
``backbone`` setting takes it from the job (and ``backbone`` may be one of ``backbones``);
without that setting it runs as it is on each backbone it declares.
"""

from __future__ import annotations

from recbole.model.abstract_recommender import GeneralRecommender

from .backbones import Encoder, InnerProductScores


class EncoderRecommender(InnerProductScores, GeneralRecommender):
    """A method on the shared encoder: ``self.encoder`` built from the settings, inner-product scores."""

    backbones: tuple[str, ...] = ("mf", "lightgcn")

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        backbone = config["backbone"]
        if backbone not in self.backbones:
            raise ValueError(f"{type(self).__name__} needs backbone {' or '.join(self.backbones)} "
                             f"(its backbones), got backbone {backbone!r}")
        interactions = dataset.inter_matrix(form="csr").astype("float32")
        self.encoder = Encoder(self.n_users, self.n_items, int(config["embedding_size"]), interactions,
                               backbone=backbone, n_layers=int(config["n_layers"]), init=config["init"])

    def scoring_embeddings(self):
        """All users' and all items' raw representations (H_U, H_I) the model scores with."""
        return self.encoder()

    def calculate_loss(self, interaction):
        raise NotImplementedError(f"{type(self).__name__} must define calculate_loss(interaction)")
