"""Compatibility shim for RecBole 1.2.1 on numpy 2, scipy >= 1.13 and torch >= 2.6.

Import this module before anything from recbole (``specbench.harness`` does). Each patch is the
smallest fix for a breakage measured in ../shared/reference/recbole.md; all are idempotent.
"""

import numpy as np
import scipy.sparse

# numpy 2 removed these aliases; recbole.config touches them at import time.
for _alias, _target in (("float_", np.float64), ("complex_", np.complex128),
                        ("unicode_", np.str_), ("bool8", np.bool_)):
    if not hasattr(np, _alias):
        setattr(np, _alias, _target)

# scipy >= 1.13: LightGCN/NGCF build their adjacency with dok_matrix._update, which was removed.
if not hasattr(scipy.sparse.dok_matrix, "_update"):
    scipy.sparse.dok_matrix._update = lambda self, d: self._dict.update(d)
