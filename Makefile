# The README's two commands: `make reproduce` and `make test`. Each creates .venv on first use
# and installs the pinned environment (envs/requirements.txt); nothing else is needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The CPU wheel of torch 2.13.0; with CUDA, e.g. `make TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128" reproduce`.
TORCH  ?= torch==2.13.0
CORES  ?= 2
SNAKE  := PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/snakemake --cores $(CORES)

.PHONY: reproduce test report figures bench paper clean-results venv sysdeps tuning-check constraints
# Debian packages the tests and `make paper` need: a headless browser for the leaderboard page,
# a LaTeX toolchain for the paper, SLURM and munge for the cluster test (tests/test_slurm.py).
# Installed with apt-get when missing (root or sudo).
SYS_PKGS := chromium chromium-driver fonts-dejavu-core texlive-latex-recommended latexmk lmodern slurm-wlm munge

venv: $(BIN)/.installed

$(BIN)/.installed: envs/requirements.txt envs/constraints.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -r envs/requirements.txt -c envs/constraints.txt
	$(BIN)/pip install --quiet --no-deps recbole==1.2.1
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

reproduce: venv
	$(SNAKE)

report: venv
	$(SNAKE) report

paper: venv sysdeps
	$(SNAKE) paper

# Rebuild a study folder's tables, figures, leaderboard and paper from its run records alone (no
# Snakemake, so no job is ever planned): `make figures STUDY=results/reference/quick-cpu`. For a
# committed reference folder the README's results section is regenerated too.
STUDY ?= results/reference/quick-cpu
figures: venv sysdeps
	$(BIN)/specbench figures $(STUDY)
	$(if $(findstring results/reference/,$(STUDY)),$(BIN)/specbench readme)

# Is the quick study's tuning budget enough? Its searches again with 4x the trials and 2x the epochs,
# and the gain in validation nDCG@20 over its committed choices; a search gaining 3% or more has both chosen
# settings retrained with seeds 1 2 3 (selection luck or a real gain) and its own 8-trial search run again under
# search seeds 1 2 3 (an unlucky draw or too small a budget): results/reference/quick-cpu/tuning-check.{csv,md}.
tuning-check: venv
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/specbench tuning-check --configfile config/quick.yaml \
	  --reference results/reference/quick-cpu --cores $(CORES) --confirm-seeds 1 2 3 --search-seeds 1 2 3

sysdeps:
	@missing=""; for p in $(SYS_PKGS); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" -eq 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $$missing; \
	fi

test: venv sysdeps
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest -q

# Seconds per training epoch and peak memory of every method x backbone of the catalogue (the four
# DirectSpec+ variants at the published settings first) on CiteULike and Gowalla, each at its own
# batch size: results/bench/<device kind>-<host>.json. `make bench DEVICE=cuda` times the same on a
# GPU; BENCH_ARGS passes more options, e.g. --methods, --budget-seconds (see --help).
# `make bench REFERENCE=<checkout of tanatosuu/directspec>` then times the authors' scripts beside ours,
# same rows, settings and steps, in alternating processes: results/bench/reference-<device kind>-<host>.json.
# `specbench estimate --configfile <study>` turns the records into a study's projected wall time.
DEVICE        ?= cpu
BENCH_THREADS ?= 1
BENCH_DATA    ?= citeulike gowalla
REFERENCE     ?=
bench: venv
	$(SNAKE) $(foreach ds,$(BENCH_DATA),data/atomic/$(ds)/stats.json)
	OMP_NUM_THREADS=$(BENCH_THREADS) $(BIN)/python -m specbench.bench --device $(DEVICE) --datasets $(BENCH_DATA) $(BENCH_ARGS)
	$(if $(REFERENCE),OMP_NUM_THREADS=$(BENCH_THREADS) $(BIN)/python -m specbench.bench_reference \
	  --reference $(REFERENCE) --device $(DEVICE) --datasets $(BENCH_DATA))

# GPU evidence in one device call (gpu/README.md). `make gpu-carry` fills the ignored gpu/carry/ (wheels
# for Python 3.12, the gzipped atomic CiteULike and Gowalla) and prints the call: carry, command, timeout.
# `make gpu-evidence OUT=dir` runs gpu/evidence.py (on the GPU machine: no venv needed, $OUT is set there);
# here `make gpu-evidence OUT=/tmp/ev GPU_ARGS=--dry` is its CPU dry run (tests/test_gpu_evidence.py).
.PHONY: gpu-evidence gpu-carry
OUT        ?= results/gpu-evidence
GPU_PYTHON ?= $(if $(wildcard $(BIN)/python),$(BIN)/python,python3)
GPU_ARGS   ?=
GPU_MIRROR ?= $(firstword $(SPECBENCH_DATA_MIRROR) $(wildcard $(CURDIR)/../shared/datasets))
gpu-evidence:
	PYTHONUNBUFFERED=1 $(GPU_PYTHON) gpu/evidence.py --out $(OUT) $(GPU_ARGS)
gpu-carry: venv
	$(if $(GPU_MIRROR),SPECBENCH_DATA_MIRROR=$(GPU_MIRROR)) $(SNAKE) data/atomic/citeulike/stats.json data/atomic/gowalla/stats.json
	$(BIN)/python gpu/carry.py

envs/specbench.yaml: envs/requirements.txt specbench/envfile.py
	$(PYTHON) specbench/envfile.py envs/requirements.txt > $@

# Regenerate the pins after a change to requirements.txt (a target of its own: the venv depends on the file).
constraints: venv
	{ sed -n '1,3p' envs/constraints.txt; $(BIN)/pip freeze --exclude-editable | grep -viE '^(torch|recbole|specbench)=='; } \
	  > envs/constraints.txt.tmp && mv envs/constraints.txt.tmp envs/constraints.txt

clean-results:
	rm -rf results/quick
