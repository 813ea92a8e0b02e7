"""Module boundaries: records and reports are read without torch or RecBole; the sampler names the data."""

import json
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

from specbench.errors import SpecbenchError
from specbench.sampling import TrainSampler
from tests.conftest import REPO


@pytest.mark.parametrize("module", ["specbench.report", "specbench.record", "specbench.search_space"])
def test_reading_records_needs_neither_torch_nor_recbole(module):
    code = f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert module in loaded
    assert not [m for m in loaded if m.split(".")[0] in ("torch", "recbole")]


def test_batch_larger_than_the_training_rows_names_the_file_and_the_setting():
    # Two users, three distinct pairs, one of them twice: four training rows, as an epoch counts them.
    train = sp.csr_matrix((np.array([2.0, 1.0, 1.0]), (np.array([1, 1, 2]), np.array([1, 2, 1]))), shape=(3, 3))
    TrainSampler(train, 4, "users", dataset="toy", data_file="data/toy/toy.train.inter")
    with pytest.raises(SpecbenchError) as err:
        TrainSampler(train, 5, "users", dataset="toy", data_file="data/toy/toy.train.inter")
    assert str(err.value) == ("train_batch_size = 5 is larger than the training data of toy "
                              "(4 rows in data/toy/toy.train.inter); use at most 4")
