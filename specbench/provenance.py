"""Where and with what a run ran: git commit, package versions, processor, GPU and driver.

Imports without torch; ``device_info`` imports it when called.
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

PACKAGES = ("specbench", "recbole", "torch", "numpy", "scipy", "pandas")
SLURM_VARS = ("SLURM_JOB_ID", "SLURM_JOB_NAME", "SLURM_CPUS_PER_TASK")


def package_versions() -> dict:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def git_state() -> dict:
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10)
        return {"commit": commit.stdout.strip() or None, "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def device_info(device) -> dict:
    """Host, processor and torch threads; for a CUDA ``device`` (a torch.device) also GPU, CUDA and driver;
    in a SLURM job also its id, name and CPUs per task (``slurm``)."""
    import torch
    info = {"device": str(device), "hostname": socket.gethostname(), "cpu": cpu_model(),
            "cpu_count": os.cpu_count(), "threads": torch.get_num_threads()}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=props.name, gpu_memory_bytes=props.total_memory, cuda=torch.version.cuda,
                    driver=nvidia_driver())
    slurm = {key[len("SLURM_"):].lower(): os.environ[key] for key in SLURM_VARS if key in os.environ}
    if slurm:  # a SLURM job: which one, and the CPUs it was granted
        info["slurm"] = slurm
    return info


def cpu_model() -> str:
    """The processor's marketing name (Linux /proc/cpuinfo), else what platform knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def nvidia_driver():
    """The NVIDIA driver version nvidia-smi reports, or None."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError, IndexError):
        return None
