#!/usr/bin/env python3
"""`make gpu-carry`: fill the ignored folder gpu/carry/ that the device call carries (gpu/README.md).

- gpu/carry/wheels/: the wheels, for CPython 3.12 on manylinux x86_64, of what `specbench run` and
  `specbench.bench` import that the GPU machine's image lacks (``PACKAGES``, at the versions of this
  environment; ``pip download --no-deps --only-binary=:all:``). Not carried: torch, numpy, scipy,
  pandas, PyYAML, tensorboard, scikit-learn and the rest that the image has (numpy, scipy and pandas
  alone would be 64 MiB, the whole limit), and snakemake (its closure does not fit and is not
  needed: gpu/evidence.py runs the jobs through `specbench run` itself);
- gpu/carry/data/<ds>.tar.gz: the prepared atomic CiteULike and Gowalla (data/atomic/<ds>/: the
  train and test .inter files and stats.json that the workflow wrote from the checksummed mirror);
- gpu/carry/manifest.json: every file's size and sha256 (gpu/evidence.py checks the data against
  it), the git commit of the working tree, and the measured size of what travels.

It then prints the device tool's call: the carry list, the command and its timeout.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import importlib.metadata
import io
import json
import re
import subprocess
import sys
import tarfile
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CARRY = ROOT / "gpu" / "carry"
# What `specbench run` / `specbench.bench` import (sys.modules after a run, less the standard library)
# minus what the GPU image has (/work/.library/device/KINDS.md, "Python packages already there").
# attrs and typing-extensions are there too; carried (150 kB) in case, installed only if missing.
PACKAGES = ("recbole", "colorlog", "texttable", "jsonschema", "jsonschema-specifications", "referencing", "rpds-py",
            "attrs", "typing-extensions")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64", "any")
DATASETS = ("citeulike", "gowalla")
LIMIT_BYTES = 64 * 2**20  # what one device call may carry: the working tree and the carried paths
COMMAND = "python3 gpu/evidence.py --out $OUT --device cuda --budget-seconds {budget}"


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def download_wheels(folder: Path, python_version: str) -> list[dict]:
    """One wheel per package at this environment's version; other versions of it are removed."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for package in PACKAGES:
        version = importlib.metadata.version(package)
        stem = f"{_norm(package)}-{version}-"
        have = [p for p in folder.glob("*.whl") if _norm(p.name.split("-")[0]) == _norm(package)]
        for stale in [p for p in have if not p.name.lower().startswith(stem.lower())]:
            stale.unlink()
        wheel = next((p for p in have if p.exists()), None)
        if wheel is None:
            cmd = [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-deps",
                   "--only-binary=:all:", "--python-version", python_version, "--implementation", "cp",
                   *[a for p in PLATFORMS for a in ("--platform", p)], "-d", str(folder), f"{package}=={version}"]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"pip download {package}=={version} failed:\n{done.stderr[-3000:]}")
            wheel = next(p for p in folder.glob("*.whl") if p.name.lower().startswith(stem.lower()))
        out.append({"file": f"wheels/{wheel.name}", "dist": package, "version": version,
                    "bytes": wheel.stat().st_size, "sha256": _sha256(wheel)})
    return out


def pack_dataset(data_dir: Path, name: str, tarball: Path) -> dict:
    """<name>/{<name>.train.inter, <name>.test.inter, stats.json} as a reproducible .tar.gz."""
    folder = data_dir / name
    files = [folder / f"{name}.train.inter", folder / f"{name}.test.inter", folder / "stats.json"]
    missing = [str(p) for p in files if not p.is_file()]
    if missing:
        raise SystemExit(f"not prepared: {', '.join(missing)}; run `make gpu-carry` (it asks Snakemake for "
                         f"{data_dir}/{name}/stats.json first)")
    tarball.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=9) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for path in files:
                info = tarfile.TarInfo(f"{name}/{path.name}")
                data = path.read_bytes()
                info.size, info.mtime, info.mode = len(data), 0, 0o644
                tar.addfile(info, io.BytesIO(data))
    tarball.write_bytes(buffer.getvalue())
    stats = json.loads((folder / "stats.json").read_text())
    return {"file": f"data/{tarball.name}", "dataset": name, "bytes": tarball.stat().st_size,
            "sha256": _sha256(tarball), "unpacked_bytes": sum(p.stat().st_size for p in files),
            "stats": {k: stats.get(k) for k in ("users", "items", "train_rows", "test_rows")}}


def working_tree_bytes() -> int | None:
    """What travels without carry: tracked files and untracked files git does not ignore."""
    done = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                          capture_output=True)
    if done.returncode != 0:
        return None
    paths = [ROOT / p for p in done.stdout.decode().split("\0") if p]
    return sum(p.stat().st_size for p in paths if p.is_file())


def git_state() -> dict:
    def git(*a):
        done = subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else None
    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="gpu/carry.py", description=__doc__.splitlines()[0])
    ap.add_argument("--carry", type=Path, default=CARRY)
    ap.add_argument("--data-dir", type=Path, default=ROOT / "data" / "atomic")
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS))
    ap.add_argument("--python-version", default="3.12", help="the GPU machine's Python")
    ap.add_argument("--budget-seconds", type=int, default=420, help="printed in the device command")
    args = ap.parse_args(argv)
    wheels = download_wheels(args.carry / "wheels", args.python_version)
    data = [pack_dataset(args.data_dir, ds, args.carry / "data" / f"{ds}.tar.gz") for ds in args.datasets]
    carried = sum(e["bytes"] for e in wheels + data)
    tree = working_tree_bytes()
    manifest = {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "git": git_state(),
                "python_version": args.python_version, "platforms": list(PLATFORMS), "wheels": wheels, "data": data,
                "total_bytes": carried, "working_tree_bytes": tree,
                "travels_bytes": (tree or 0) + carried, "limit_bytes": LIMIT_BYTES}
    (args.carry / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    mib = lambda n: f"{n / 2**20:.2f} MiB"  # noqa: E731
    for e in wheels:
        print(f"  {e['file']:72s} {mib(e['bytes'])}")
    for e in data:
        print(f"  {e['file']:72s} {mib(e['bytes'])} ({mib(e['unpacked_bytes'])} unpacked)")
    print(f"carried: {mib(carried)} (wheels {mib(sum(e['bytes'] for e in wheels))}, data "
          f"{mib(sum(e['bytes'] for e in data))}); working tree {mib(tree or 0)}; travels "
          f"{mib(manifest['travels_bytes'])} of {mib(LIMIT_BYTES)}")
    if manifest["travels_bytes"] > LIMIT_BYTES:
        print("WARNING: over the device tool's 64 MiB: the call would be refused", file=sys.stderr)
    rel = args.carry.resolve().relative_to(ROOT) if args.carry.resolve().is_relative_to(ROOT) else args.carry
    print("\nThe device call (gpu/README.md):")
    print(json.dumps({"carry": [str(rel)], "command": COMMAND.format(budget=args.budget_seconds),
                      "timeout_s": args.budget_seconds + 80}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
