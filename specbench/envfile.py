"""envs/specbench.yaml (a conda environment) made from envs/requirements.txt, the one source of truth."""

from __future__ import annotations

import sys
from pathlib import Path

TORCH, RECBOLE = "torch==2.13.0", "recbole==1.2.1"


def requirement_lines(path: Path) -> list[str]:
    return [line.split("#")[0].strip() for line in Path(path).read_text().splitlines()
            if line.split("#")[0].strip()]


def conda_yaml(requirements: Path) -> str:
    pins = [TORCH, *requirement_lines(requirements), RECBOLE]
    body = "\n".join(f"      - {p}" for p in pins)
    return ("# Generated from envs/requirements.txt by `make envs/specbench.yaml`; do not edit.\n"
            "# (conda's pip section cannot say --no-deps: recbole here also pulls its pinned ray.)\n"
            "name: specbench\nchannels: [conda-forge]\ndependencies:\n  - python=3.11\n  - pip\n"
            f"  - pip:\n{body}\n      - -e ..\n")


if __name__ == "__main__":
    sys.stdout.write(conda_yaml(Path(sys.argv[1])))
