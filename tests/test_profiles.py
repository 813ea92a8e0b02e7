"""Executor profiles parse and plan every job with its resources (dry runs, no cluster needed)."""

import re
import subprocess
import sys

import pytest
import yaml

from tests.conftest import REPO

PROFILES = REPO / "profiles"


def dry_run(tmp_path, *args):
    result = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-s", str(REPO / "Snakefile"), *args],
                            cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def jobs_with_resources(plan: str) -> list[tuple[str, dict]]:
    """(rule, resources) for every job of a dry-run plan."""
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", plan):
        rule = re.match(r"(?:local)?rule (\w+):", block)
        res = re.search(r"resources: (.*)", block)
        if rule and res:
            jobs.append((rule.group(1), dict(kv.split("=", 1) for kv in res.group(1).split(", "))))
    return jobs


def gpu_study(tmp_path):
    """The quick study asking for CUDA (as config/paper.yaml does), so jobs carry a GPU request."""
    config = yaml.safe_load((REPO / "config" / "quick.yaml").read_text())
    config["run_settings"]["device"] = "cuda"
    config["resources"] = {"default": {"mem_mb": 12000, "runtime": 45}}
    path = tmp_path / "gpu.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize("name,executor", [("slurm", "slurm"), ("kubernetes", "kubernetes"), ("local-gpu", None)])
def test_profiles_parse(name, executor):
    config = yaml.safe_load((PROFILES / name / "config.yaml").read_text())
    assert config.get("executor") == executor
    assert config.get("retries", 0) >= 1  # pre-empted jobs resume from their checkpoint


def test_slurm_dry_run_plans_every_job_with_its_gpu_request(tmp_path):
    plan = dry_run(tmp_path, "--profile", str(PROFILES / "slurm"), "--configfile", str(gpu_study(tmp_path)))
    jobs = jobs_with_resources(plan)
    trains = [res for rule, res in jobs if rule in ("train", "tune")]
    from specbench.study import Study
    study = Study(yaml.safe_load(gpu_study(tmp_path).read_text()), root=REPO)
    assert len([r for rule, r in jobs if rule == "train"]) == len(study.jobs())
    assert trains and all(r["gpu"] == "1" and r["mem_mb"] == "12000" and r["runtime"] == "45" for r in trains)
    assert all(r["slurm_partition"] == "gpu" for _, r in jobs)


def test_cpu_jobs_ask_for_no_gpu(tmp_path):
    jobs = jobs_with_resources(dry_run(tmp_path, "--profile", str(PROFILES / "slurm")))
    assert {r["gpu"] for rule, r in jobs if rule == "train"} == {"0"}


def test_kubernetes_dry_run(tmp_path):
    # The profile names S3; a dry run here swaps in the filesystem provider (no bucket needed).
    plan = dry_run(tmp_path, "--profile", str(PROFILES / "kubernetes"), "--configfile", str(gpu_study(tmp_path)),
                   "--default-storage-provider", "fs", "--default-storage-prefix", str(tmp_path / "store"),
                   "--container-image", "example/specbench:latest")
    assert any(rule == "train" and r["gpu"] == "1" for rule, r in jobs_with_resources(plan))


def test_local_gpu_profile_limits_concurrent_gpu_jobs(tmp_path):
    plan = dry_run(tmp_path, "--profile", str(PROFILES / "local-gpu"), "--configfile", str(gpu_study(tmp_path)))
    assert "train" in plan
    assert yaml.safe_load((PROFILES / "local-gpu" / "config.yaml").read_text())["resources"]["gpu"] == 1
