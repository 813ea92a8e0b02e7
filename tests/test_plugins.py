import os
import subprocess
import sys
from pathlib import Path

import pytest

from specbench import plugins
from specbench.errors import SpecbenchError
from tests.helpers import REPO, FakeDataset, build_model, toy_plugin


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
    assert "EncoderRecommender" not in registry  # nor the shared base (models/base.py)


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
    (tmp_path / "toy.py").write_text(toy_plugin())
    (tmp_path / "ToyPop.yaml").write_text("learning_rate: 0.5\n")
    fresh_registry.setenv("SPECBENCH_MODELS", str(tmp_path))
    entry = plugins.get_model("ToyPop")
    assert entry.source == "models/toy.py" and entry.defaults() == {"learning_rate": 0.5}
    # a plain GeneralRecommender declares no backbones: it runs as it is, on mf
    assert entry.backbones == ("mf",) and not entry.takes_backbone


def test_broken_plugin_names_its_file(tmp_path, fresh_registry):
    (tmp_path / "broken.py").write_text("import not_a_module_anywhere\n")
    fresh_registry.setenv("SPECBENCH_MODELS", str(tmp_path))
    with pytest.raises(SpecbenchError, match=r"broken\.py.*not_a_module_anywhere"):
        plugins.discover()


def test_duplicate_names_are_refused(tmp_path, fresh_registry):
    (tmp_path / "bpr_again.py").write_text(toy_plugin("BPR"))
    fresh_registry.setenv("SPECBENCH_MODELS", str(tmp_path))
    with pytest.raises(SpecbenchError, match="'BPR' is defined twice"):
        plugins.discover()


def test_entry_point_group_is_discovered(tmp_path):
    """A package that exposes `specbench.models` is found without touching models/ (real metadata on sys.path)."""
    (tmp_path / "toy_pkg.py").write_text(toy_plugin())
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
    from specbench.settings import harness_defaults
    from specbench.validate import validate_settings
    validate_settings(plugins.get_model("SGL"), {**harness_defaults(), **sgl, "reg_weight": 1e-4}, where="test")


def test_each_model_declares_its_backbones_on_its_class():
    registry = plugins.discover()
    for name in ("DirectSpecPlus", "DirectSpec", "PositivesOnly", "DirectAU", "MAWU", "NonContrastiveCL", "SSM"):
        assert registry[name].backbones == ("mf", "lightgcn") and registry[name].takes_backbone, name
    for name in ("SimGCL", "XSimGCL", "AFDGCF"):  # propagation layers: a backbone setting, LightGCN only
        assert registry[name].backbones == ("lightgcn",) and registry[name].takes_backbone, name
    for name in ("SGLAdapter", "NCLAdapter"):  # RecBole's graph models: no backbone setting
        assert registry[name].backbones == ("lightgcn",) and not registry[name].takes_backbone, name
    for name in ("GFCF", "BSPM", "SGFCF"):  # training-free filters: a group of their own
        assert registry[name].backbones == ("filter",) and not registry[name].takes_backbone, name
    assert registry["BPR"].backbones is None and not registry["BPR"].takes_backbone  # the catalogue decides
    for entry in registry.values():  # one declaration: no yaml lists backbones or restricts `backbone`
        if entry.source != "recbole":
            assert "backbones" not in entry._yaml() and "backbone" not in entry.meta("schema"), entry.name


def test_the_backbone_setting_allows_the_declared_backbones_only():
    from specbench.validate import settings_schema
    assert settings_schema(plugins.get_model("SimGCL"))["properties"]["backbone"]["enum"] == ["lightgcn"]
    assert settings_schema(plugins.get_model("DirectAU"))["properties"]["backbone"]["enum"] == ["mf", "lightgcn"]


def test_a_yaml_backbones_list_is_refused_with_the_class_attribute_to_use(tmp_path, fresh_registry):
    (tmp_path / "toy.py").write_text(toy_plugin())
    (tmp_path / "ToyPop.yaml").write_text("backbones: [lightgcn]\nlearning_rate: 0.5\n")
    fresh_registry.setenv("SPECBENCH_MODELS", str(tmp_path))
    with pytest.raises(SpecbenchError, match=r"ToyPop.yaml, line 1: top level: key 'backbones' is not allowed: "
                                             r"backbones are declared by the model class's `backbones` attribute"):
        plugins.get_model("ToyPop").defaults()


def test_models_is_one_package_with_one_shared_encoder():
    """models/ is imported once, as specbench_models: one backbones module, one Encoder class."""
    registry = plugins.discover()
    import specbench_models.backbones
    from specbench_models.backbones import Encoder
    backbones_file = (REPO / "models" / "backbones.py").resolve()
    loaded = [m for m in list(sys.modules.values())
              if getattr(m, "__file__", None) and Path(m.__file__).resolve() == backbones_file]
    assert loaded == [specbench_models.backbones]
    for name, entry in registry.items():  # every method module is a module of the package
        if entry.source.startswith("models/"):
            assert entry.cls.__module__.startswith("specbench_models."), name
    from specbench_models.base import EncoderRecommender
    dataset = FakeDataset([(1, 1), (1, 2), (2, 2), (3, 1)], n_users=3, n_items=2)
    built = []
    for name, entry in sorted(registry.items()):  # every model on the shared encoder, on each backbone
        if issubclass(entry.cls, EncoderRecommender):
            for backbone in entry.backbones:
                model = build_model(name, dataset, backbone=backbone, embedding_size=4)
                assert type(model.encoder) is Encoder and isinstance(model.encoder, Encoder), name
                built.append((name, backbone))
    assert {("DirectSpecPlus", "mf"), ("SSM", "lightgcn"), ("AFDGCF", "lightgcn")} <= set(built)


def test_a_broken_module_of_the_package_names_its_file(tmp_path, fresh_registry):
    import specbench_models
    (tmp_path / "broken.py").write_text("from .backbones import NoSuchThing\n")
    fresh_registry.setattr(specbench_models, "__path__", [*specbench_models.__path__, str(tmp_path)])
    with pytest.raises(SpecbenchError, match=r"could not import model file .*broken\.py.*NoSuchThing"):
        plugins.discover()


def test_extra_folders_import_their_files_by_location_without_sys_path(tmp_path, fresh_registry):
    (tmp_path / "_shared.py").write_text("NAME = 'ToyShared'\n")
    (tmp_path / "toy.py").write_text(toy_plugin() + "\nfrom ._shared import NAME  # a sibling, relatively\n")
    fresh_registry.setenv("SPECBENCH_MODELS", os.pathsep.join([str(tmp_path), str(REPO / "models")]))
    path_before = list(sys.path)
    registry = plugins.discover()
    assert sys.path == path_before
    module = sys.modules[registry["ToyPop"].cls.__module__]
    assert module.NAME == "ToyShared" and Path(module.__file__) == tmp_path / "toy.py"
    # the repository's models/ named again is the package, not a second copy of it
    assert registry["DirectSpecPlus"].cls.__module__ == "specbench_models.directspec"


def test_the_code_fingerprint_follows_the_model_files_and_nothing_else(tmp_path, fresh_registry):
    (tmp_path / "_shared.py").write_text("def helper():\n    return 1\n")
    (tmp_path / "toy.py").write_text(toy_plugin() + "\nfrom ._shared import helper  # a function it uses\n")
    (tmp_path / "ToyPop.yaml").write_text("learning_rate: 0.5\n")
    (tmp_path / "unrelated.txt").write_text("notes\n")
    fresh_registry.setenv("SPECBENCH_MODELS", str(tmp_path))
    first = plugins.code_fingerprint("ToyPop")
    (tmp_path / "unrelated.txt").write_text("other notes\n")
    assert plugins.code_fingerprint("ToyPop") == first
    changed = []
    for name, text in [("ToyPop.yaml", "learning_rate: 0.25\n"), ("_shared.py", "def helper():\n    return 2\n"),
                       ("toy.py", (tmp_path / "toy.py").read_text() + "# edited\n")]:
        (tmp_path / name).write_text(text)
        changed.append(plugins.code_fingerprint("ToyPop"))
    assert len({first, *changed}) == 4  # every edit of the model's own files is a new fingerprint
    # a RecBole built-in is pinned by the environment: its fingerprint is RecBole's version
    assert plugins.code_fingerprint("BPR") == f"recbole-{__import__('recbole').__version__}"
