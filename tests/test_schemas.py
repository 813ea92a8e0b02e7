"""Every config file a user edits is checked against its JSON Schema (config/schema/) before any job:
a misspelt key names the file, the line, the entry and the key, and suggests the right one."""

import glob
import os
from pathlib import Path

import jsonschema
import pytest
import yaml

from specbench import schemas
from specbench.datasets import load_catalog
from specbench.errors import SpecbenchError
from specbench.report.leaderboard import load_published

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config"
OURS = ["study", "methods", "datasets", "published", "model"]  # settings.schema.yaml is checked elsewhere


def _copy(tmp_path, src: Path, old: str, new: str, name=None) -> Path:
    """A copy of a real config file with one edit (the text must occur exactly once)."""
    text = src.read_text()
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {src}"
    out = tmp_path / (name or src.name)
    out.write_text(text.replace(old, new))
    return out


def _line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def _error(fn, *args) -> str:
    with pytest.raises(SpecbenchError) as err:
        fn(*args)
    return str(err.value)


# ---------------------------------------------------------------- the schemas themselves

def _walk(node, where="#"):
    if isinstance(node, dict):
        yield where, node
        for key, value in node.items():
            yield from _walk(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{where}/{i}")


@pytest.mark.parametrize("name", OURS)
def test_schemas_are_valid_strict_and_documented(name):
    schema = schemas.load_schema(name)  # also checked against the 2020-12 metaschema
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"].endswith("2020-12/schema") and schema.get("title") and schema.get("description")
    defs = schema.get("$defs", {})
    for where, node in _walk(schema):
        if "properties" not in node or where.endswith("/properties"):
            continue
        if not (name == "model" and where == "#"):  # a model yaml's top-level keys are its free setting names
            assert node.get("additionalProperties") is False, f"{name}: {where} is not strict"
        for key, rule in node["properties"].items():
            target = defs.get(rule.get("$ref", "").rsplit("/", 1)[-1], {}) if "$ref" in rule else {}
            assert rule.get("description") or target.get("description"), f"{name}: {where}/{key} is undocumented"


def test_a_schema_name_that_does_not_exist_is_named():
    assert "no schema" in _error(schemas.load_schema, "method")


# ---------------------------------------------------------------- the real files pass

@pytest.mark.parametrize("file, name", [("quick.yaml", "study"), ("paper.yaml", "study"),
                                        ("methods.yaml", "methods"), ("datasets.yaml", "datasets"),
                                        ("published.yaml", "published")])
def test_the_real_config_files_pass(file, name):
    data = schemas.check_file(CONFIG / file, name)
    assert data == yaml.safe_load((CONFIG / file).read_text())


def test_the_real_catalogue_passes_with_its_anchors_and_merge_keys_resolved():
    methods = schemas.check_file(CONFIG / "methods.yaml", "methods")["methods"]
    published = methods["DirectSpecPlusPublished"]["presets"]
    assert published["citeulike"]["learning_rate"] == 180.0  # from <<: *directspec_published
    assert published["*/mf"] == {"lr_decay": 0.9995, "epochs": 300}  # the entry's own key wins over the merge
    assert methods["DirectSpecLinear"]["presets"] is methods["DirectSpecPlus"]["presets"]


@pytest.mark.parametrize("path", sorted((ROOT / "models").glob("*.yaml")), ids=lambda p: p.name)
def test_every_real_model_yaml_passes(path):
    assert schemas.check_model_file(path) == schemas.load_yaml(path)


def test_no_real_model_setting_nor_recbole_setting_is_taken_for_a_misspelling():
    import recbole
    targets = list(schemas.MODEL_META_KEYS) + sorted(schemas.harness_settings())
    files = sorted((ROOT / "models").glob("*.yaml"))
    files += sorted(Path(p) for p in glob.glob(os.path.join(os.path.dirname(recbole.__file__),
                                                            "properties", "model", "*.yaml")))
    assert len(files) > 50
    trips = {(f.name, k): schemas.near_miss(k, targets) for f in files for k in (schemas.load_yaml(f) or {})
             if k not in targets and schemas.near_miss(k, targets)}
    assert trips == {}


# ---------------------------------------------------------------- a misspelt key, file by file

def test_a_study_with_a_misspelt_key(tmp_path):
    bad = _copy(tmp_path, CONFIG / "quick.yaml", "\nrun_settings:\n", "\nrun_setings:\n")
    message = _error(schemas.check_file, bad, "study")
    line = _line_of(bad, "run_setings:")
    assert f"{bad}, line {line}: top level: unknown key 'run_setings' (did you mean 'run_settings'?)" in message
    assert "config/schema/study.schema.yaml" in message


def test_a_study_with_a_misspelt_nested_key_and_a_dropped_key(tmp_path):
    bad = _copy(tmp_path, CONFIG / "paper.yaml", "  select_epochs: true", "  select_epoch: true")
    bad.write_text(bad.read_text() + "methods_extra: {}\n")
    message = _error(schemas.check_file, bad, "study")
    assert f"{bad}, line {_line_of(bad, 'select_epoch:')}: tuning: unknown key 'select_epoch' " \
           f"(did you mean 'select_epochs'?)" in message
    assert "top level: unknown key 'methods_extra'" in message  # dropped: never used


def test_a_method_entry_with_a_misspelt_key(tmp_path):
    bad = _copy(tmp_path, CONFIG / "methods.yaml", "    fixed: {merge: early}", "    fixd: {merge: early}")
    message = _error(schemas.check_file, bad, "methods")
    assert f"{bad}, line {_line_of(bad, 'fixd:')}: methods.BSPM: unknown key 'fixd' (did you mean 'fixed'?)" \
        in message


def test_every_problem_of_a_catalogue_is_reported_at_once(tmp_path):
    bad = _copy(tmp_path, CONFIG / "methods.yaml", "    fixed: {merge: early}",
                "    fixd: {merge: early}\n    tune: 'no'\n    params: {k: 3}")
    bad = _copy(tmp_path, bad, "model: {mf: BPR, lightgcn: LightGCNAdapter}", "model: {mf: BPR, lgcn: LightGCNAdapter}")
    bad = _copy(tmp_path, bad, "      alpha: {low: 0.05, high: 1.5, log: true}", "      alpha: []")
    lines = _error(schemas.check_file, bad, "methods").splitlines()
    tune = _line_of(bad, "tune: 'no'")
    assert f"{bad}, line {tune}: methods.BSPM.tune = 'no': expected boolean" in lines
    assert any(line.endswith("methods.BSPM: unknown key 'params' (allowed: label, model, backbones, presets, "
                             "fixed, search_space, tune)") for line in lines)  # `params` is no key any more
    assert any(line.endswith("methods.BPR.model: key 'lgcn' is not allowed: expected one of 'mf', 'lightgcn', "
                             "'filter' (did you mean 'lightgcn'?)") for line in lines)
    assert any(line.endswith("methods.DirectSpecLinear.search_space.alpha = []: expected at least 1 item")
               for line in lines)
    assert len(lines) == 6  # 5 problems + where the format is documented


def test_a_dataset_entry_with_a_misspelt_key(tmp_path):
    bad = _copy(tmp_path, CONFIG / "datasets.yaml", "    title: CiteULike\n", "    titel: CiteULike\n")
    message = _error(load_catalog, bad)
    assert f"{bad}, line {_line_of(bad, 'titel:')}: datasets.citeulike: unknown key 'titel' " \
           f"(did you mean 'title'?)" in message
    assert "missing key 'title'" not in message  # the misspelling is reported once


def test_a_dataset_with_a_wrong_split_and_type(tmp_path):
    bad = _copy(tmp_path, CONFIG / "datasets.yaml", "split: {test_fraction: 0.2, seed: 2024}",
                "split: {test_fraction: 0.2, sed: 2024}")
    gowalla = "    id_space: {users: 29858, items: 40981}\n    expect: {users: 29858, items: 40981}\n    files:\n" \
              "      train:\n        rows: 810128\n"
    bad = _copy(tmp_path, bad, "    split: fixed\n" + gowalla, "    split: 3\n" + gowalla)
    bad = _copy(tmp_path, bad, "        rows: 166025\n", "        rows: many\n")
    message = _error(load_catalog, bad)
    assert "datasets.ml100k.split: unknown key 'sed' (did you mean 'seed'?)" in message
    assert "datasets.gowalla.split = 3: expected 'fixed' or a mapping" in message
    assert "datasets.citeulike.files.train.rows = 'many': expected integer or null" in message


def test_a_published_entry_with_a_misspelt_key(tmp_path):
    bad = _copy(tmp_path, CONFIG / "published.yaml", "    metric: ndcg@20\n    value: 0.1554",
                "    metirc: ndcg@20\n    value: 0.1554")
    message = _error(load_published, bad)
    assert f"{bad}, line {_line_of(bad, 'metirc:')}: entries[1]: unknown key 'metirc' (did you mean 'metric'?)" \
        in message
    assert "missing key" not in message


def test_a_published_file_with_a_misspelt_top_level_key_and_a_wrong_value(tmp_path):
    bad = _copy(tmp_path, CONFIG / "published.yaml", "tolerance: 0.05", "tolerence: 0.05")
    bad = _copy(tmp_path, bad, "    value: 0.1291", "    value: '0.1291'")
    message = _error(load_published, bad)
    assert "top level: unknown key 'tolerence' (did you mean 'tolerance'?)" in message
    assert "entries[2].value = '0.1291': expected number" in message


def test_a_model_yaml_with_a_misspelt_meta_block_and_a_schema_for_no_setting(tmp_path):
    bad = _copy(tmp_path, ROOT / "models" / "SGFCF.yaml", "\nsearch_space:\n", "\nserach_space:\n")
    bad = _copy(tmp_path, bad, "  gamma: {type: number, minimum: 0}", "  gama: {type: number, minimum: 0}")
    message = _error(schemas.check_model_file, bad)
    assert f"{bad}, line {_line_of(bad, 'serach_space:')}: top level: unknown key 'serach_space' " \
           f"(did you mean 'search_space'?)" in message
    assert f"{bad}, line {_line_of(bad, 'gama:')}: schema: key 'gama' names no setting of this yaml and no " \
           f"harness setting (did you mean 'gamma'?)" in message


@pytest.mark.parametrize("old, new, expected", [
    ("learning_rate: 0.001", "learing_rate: 0.001",
     "top level: unknown key 'learing_rate' (did you mean 'learning_rate'?)"),
    ("train_batch_size: 2048", "train_batch_sise: 2048",
     "top level: unknown key 'train_batch_sise' (did you mean 'train_batch_size'?)"),
    ("\nschema:\n", "\nschemas:\n", "top level: unknown key 'schemas' (did you mean 'schema'?)"),
    ("\nsearch_space:\n", "\nsearch_spaces:\n", "top level: unknown key 'search_spaces' (did you mean 'search_space'?)"),
    ("  gamma1: {low: 0.1, high: 3.0, log: true}", "  gamma3: {low: 0.1, high: 3.0, log: true}",
     "search_space: key 'gamma3' names no setting of this yaml and no harness setting"),
    ("  gamma1: {type: number, minimum: 0}", "  gamma1: {type: flaot, mininum: 0}",
     "schema.gamma1: unknown key 'mininum' (did you mean 'minimum'?)"),
    ("  gamma1: {type: number, minimum: 0}", "  gamma1: {type: flaot, mininum: 0}",
     "schema.gamma1.type = 'flaot': expected one of 'string', 'number'"),
    ("  weight_decay: {low: 1.0e-8, high: 1.0e-4, log: true}", "  weight_decay: []",
     "search_space.weight_decay = []: expected at least 1 item"),
    ("\nschema:\n", "\nbackbones: [lightgcn]\nschema:\n",
     "top level: key 'backbones' is not allowed: backbones are declared by the model class's `backbones` attribute"),
])
def test_model_yaml_problems(tmp_path, old, new, expected):
    bad = _copy(tmp_path, ROOT / "models" / "MAWU.yaml", old, new)
    assert expected in _error(schemas.check_model_file, bad)


def test_harness_settings_are_those_of_the_settings_schema_and_can_be_given():
    assert {"learning_rate", "train_batch_size", "epochs"} <= schemas.harness_settings()
    data = {"k": 3, "schema": {"k": {"type": "integer"}, "epochs": {"minimum": 1}}}
    assert schemas.check_model_yaml(data, "x.yaml") is data
    assert "schema: key 'epochs' names no setting" in _error(schemas.check_model_yaml, data, "x.yaml", {"lr"})


# ---------------------------------------------------------------- YAML itself

def test_a_tab_names_the_file_line_and_column(tmp_path):
    bad = _copy(tmp_path, CONFIG / "methods.yaml", "    label: GF-CF\n", "\tlabel: GF-CF\n")
    message = _error(schemas.check_file, bad, "methods")
    assert message.startswith(f"{bad}, line {_line_of(bad, 'label: GF-CF')}, column 1: ")
    assert "TAB" in message and "Traceback" not in message
    assert _error(schemas.load_yaml, bad) == message
    bad = _copy(tmp_path, CONFIG / "published.yaml", "    value: 0.1291\n", "\tvalue: 0.1291\n")
    assert _error(load_published, bad).startswith(f"{bad}, line {_line_of(bad, 'value: 0.1291')}, column 1: ")


def test_other_syntax_errors_and_a_missing_file(tmp_path):
    bad = tmp_path / "study.yaml"
    bad.write_text("datasets: [ml100k\nseeds: [0]\n")
    assert _error(schemas.check_file, bad, "study").startswith(f"{bad}, line 2, column ")
    assert _error(schemas.check_file, tmp_path / "none.yaml", "study") == f"{tmp_path / 'none.yaml'} does not exist"


def test_scientific_notation_is_a_float_and_a_duplicate_key_is_refused(tmp_path):
    f = tmp_path / "m.yaml"
    f.write_text("ssl_reg: 1e-7\nlr: 1.0e-3\nname: 1e\n")
    assert schemas.load_yaml(f) == {"ssl_reg": 1e-7, "lr": 1e-3, "name": "1e"}
    f.write_text("methods:\n  BPR: {label: a}\n  SSM: {}\n  BPR: {label: b}\n")
    assert _error(schemas.load_yaml, f) == f"{f}, line 4, column 3: duplicate key 'BPR' (first given on line 2)"


def test_a_wrong_type_names_the_expected_type(tmp_path):
    bad = _copy(tmp_path, CONFIG / "quick.yaml", "  trials: 8\n", "  trials: two\n")
    bad = _copy(tmp_path, bad, "seeds: [0] ", "seeds: 0 ")
    bad = _copy(tmp_path, bad, "new_models: true", "new_models: 'yes'")
    message = _error(schemas.check_file, bad, "study")
    assert f"{bad}, line {_line_of(bad, 'trials:')}: tuning.trials = 'two': expected integer" in message
    assert "seeds = 0: expected a list" in message
    assert "new_models = 'yes': expected boolean" in message


def test_check_on_data_without_a_file_and_an_empty_file(tmp_path):
    message = _error(schemas.check, {"study": "q", "datasets": ["ml100k"], "seeds": [0], "backbones": ["gcn"]}, "study",
                     "config/quick.yaml")
    assert message.splitlines()[:2] == [
        "config/quick.yaml: top level: missing key 'methods' (methods of the catalogue (its `methods` keys), "
        "in table order)",
        "config/quick.yaml: backbones[0] = 'gcn': expected one of 'mf', 'lightgcn', 'filter'"]
    empty = tmp_path / "methods.yaml"
    empty.write_text("# nothing yet\n")
    assert _error(schemas.check_file, empty, "methods").startswith(f"{empty}: the file is empty: expected a mapping")
