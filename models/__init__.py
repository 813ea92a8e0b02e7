"""specbench_models: the benchmark's methods, as RecBole plugins (this folder, models/, installed
under that import name by pyproject.toml).

Every module here is a method file, found by specbench.plugins.discover(): each public
(not ``_``-prefixed) RecBole ``GeneralRecommender`` subclass defined in it is a model, named by its
class, with its default settings in ``<ClassName>.yaml`` beside it (plus optional ``schema:``,
JSON schema per setting, and ``search_space:`` blocks). Modules whose name starts with ``_``
and those in ``SHARED_MODULES`` hold shared pieces, not methods.

Adding a method: add ``models/mymethod.py`` (or a file in a folder named by $SPECBENCH_MODELS)
with a class deriving from ``base.EncoderRecommender`` (the shared MF / LightGCN encoder, inner-
product scoring; see its docstring for what a method provides), and ``models/MyMethod.yaml``::

    # models/mymethod.py
    from recbole.utils import InputType
    from specbench_models.base import EncoderRecommender   # in models/ also: from .base import ...

    class MyMethod(EncoderRecommender):
        input_type = InputType.PAIRWISE                     # batches carry neg_item_id
        def calculate_loss(self, interaction):
            hu, hi = self.encoder.encode(interaction[self.USER_ID], interaction[self.ITEM_ID])
            ...

Shared pieces are imported as modules of this package, never by editing sys.path: relatively
inside models/ (``from .backbones import Encoder``), as ``specbench_models.backbones`` elsewhere.
"""

from specbench import compat  # noqa: F401  (RecBole on numpy 2 / new scipy: before any model imports recbole)

# Modules of shared pieces that define no method (discovery does not look for models in them).
SHARED_MODULES = ("backbones", "base")
