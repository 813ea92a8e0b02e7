import subprocess
import sys
import textwrap

import pytest

from specbench import plugins
from specbench.errors import SpecbenchError

TOY_MODEL = textwrap.dedent('''
    import torch
    from recbole.model.abstract_recommender import GeneralRecommender
    from recbole.utils import InputType

    class ToyPop(GeneralRecommender):
        input_type = InputType.POINTWISE
        def __init__(self, config, dataset):
            super().__init__(config, dataset)
            self.bias = torch.nn.Parameter(torch.zeros(self.n_items))
        def calculate_loss(self, interaction):
            return -self.bias[interaction[self.ITEM_ID]].sigmoid().log().mean()
        def predict(self, interaction):
            return self.bias[interaction[self.ITEM_ID]]
        def full_sort_predict(self, interaction):
            return self.bias.expand(len(interaction[self.USER_ID]), -1).reshape(-1)
''')


@pytest.fixture
def fresh_registry(monkeypatch):
    plugins._discover.cache_clear()
    yield monkeypatch
    plugins._discover.cache_clear()


def test_finds_models_folder_and_recbole_builtins():
    registry = plugins.discover()
    assert registry["DirectSpecPlus"].source == "models/directspec.py"
    assert registry["DirectSpec"].defaults_file.name == "DirectSpec.yaml"
    assert registry["BPR"].source == "recbole" and registry["LightGCN"].source == "recbole"
    assert "_DirectSpec" not in registry  # private base classes are not methods


def test_defaults_come_from_the_yaml_beside_the_model():
    defaults = plugins.get_model("DirectSpecPlus").defaults()
    assert defaults["train_sampler"] == "users" and defaults["learner"] == "sgd"


def test_unknown_name_lists_known_models():
    with pytest.raises(SpecbenchError) as err:
        plugins.get_model("DirectSpecPlsu")
    message = str(err.value)
    assert "unknown model 'DirectSpecPlsu'" in message
    assert "DirectSpecPlus" in message and "LightGCN" in message
    assert "lightgbm" not in message.lower()


def test_a_dropped_in_file_is_discovered(tmp_path, fresh_registry):
    (tmp_path / "toy.py").write_text(TOY_MODEL)
    (tmp_path / "ToyPop.yaml").write_text("learning_rate: 0.5\n")
    fresh_registry.setenv("SPECBENCH_MODELS", str(tmp_path))
    entry = plugins.get_model("ToyPop")
    assert entry.source == "models/toy.py" and entry.defaults() == {"learning_rate": 0.5}


def test_broken_plugin_names_its_file(tmp_path, fresh_registry):
    (tmp_path / "broken.py").write_text("import not_a_module_anywhere\n")
    fresh_registry.setenv("SPECBENCH_MODELS", str(tmp_path))
    with pytest.raises(SpecbenchError, match=r"broken\.py.*not_a_module_anywhere"):
        plugins.discover()


def test_duplicate_names_are_refused(tmp_path, fresh_registry):
    (tmp_path / "bpr_again.py").write_text(TOY_MODEL.replace("ToyPop", "BPR"))
    fresh_registry.setenv("SPECBENCH_MODELS", str(tmp_path))
    with pytest.raises(SpecbenchError, match="'BPR' is defined twice"):
        plugins.discover()


def test_entry_point_group_is_discovered(tmp_path):
    """A package that exposes `specbench.models` is found without touching models/ (real metadata on sys.path)."""
    (tmp_path / "toy_pkg.py").write_text(TOY_MODEL)
    dist = tmp_path / "toy_pkg-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-pkg\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[specbench.models]\ntoy = toy_pkg:ToyPop\n")
    code = ("from specbench.plugins import get_model; e = get_model('ToyPop'); "
            "print(e.source, e.defaults_file.name)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["entry", "point", "toy_pkg:ToyPop", "ToyPop.yaml"]


def test_recbole_yaml_floats_in_scientific_notation_are_numbers():
    # RecBole's SGL.yaml writes reg_weight as 1e-05 without a dot: YAML 1.1 would make it a string,
    # and a numeric override would then be rejected by the schema.
    sgl = plugins.get_model("SGL").defaults()
    assert isinstance(sgl["reg_weight"], float) and sgl["reg_weight"] == 1e-5
    from specbench.validate import validate_settings, HARNESS_DEFAULTS
    validate_settings(plugins.get_model("SGL"), {**HARNESS_DEFAULTS, **sgl, "reg_weight": 1e-4}, where="test")
