"""The pinned environment has one source of truth: requirements.txt (conda yaml and constraints agree)."""

from specbench.envfile import conda_yaml, requirement_lines
from tests.conftest import REPO

ENVS = REPO / "envs"


def test_conda_yaml_is_generated_from_requirements():
    assert (ENVS / "specbench.yaml").read_text() == conda_yaml(ENVS / "requirements.txt"), \
        "envs/specbench.yaml is stale: run `make envs/specbench.yaml`"


def test_constraints_pin_every_requirement_to_the_same_version():
    constraints = {line.split("==")[0].lower().replace("_", "-"): line for line in requirement_lines(ENVS / "constraints.txt")}
    for req in requirement_lines(ENVS / "requirements.txt"):
        name = req.split("==")[0].lower().replace("_", "-")
        assert constraints.get(name) == req or constraints.get(name, "").lower() == req.lower(), \
            f"{req} is not pinned identically in envs/constraints.txt ({constraints.get(name)})"


def test_installed_versions_match_the_pins():
    from importlib.metadata import version

    from packaging.version import Version
    for req in requirement_lines(ENVS / "requirements.txt"):
        name, pinned = req.split("==")
        assert Version(version(name)) == Version(pinned), f"{name} {version(name)} installed, {pinned} pinned"
