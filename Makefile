# The README's two commands: `make reproduce` and `make test`. Each creates .venv on first use
# and installs the pinned environment (envs/requirements.txt); nothing else is needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The CPU wheel of torch 2.13.0; with CUDA, e.g. `make TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128" reproduce`.
TORCH  ?= torch==2.13.0
CORES  ?= 2
SNAKE  := PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/snakemake --cores $(CORES)

.PHONY: reproduce test report bench paper clean-results venv sysdeps
# Debian packages the tests and `make paper` need: a headless browser for the leaderboard page and
# a LaTeX toolchain for the paper. Installed with apt-get when missing (root or sudo).
SYS_PKGS := chromium fonts-dejavu-core texlive-latex-recommended latexmk lmodern

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

sysdeps:
	@missing=""; for p in $(SYS_PKGS); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" -eq 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $$missing; \
	fi

test: venv sysdeps
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest -q

# Seconds per training epoch and peak memory of DirectSpec+ (MF/LightGCN x single tau/tau0-tau1) on
# CiteULike and Gowalla at the published settings: results/bench/<device kind>-<host>.json.
# `make bench DEVICE=cuda` times the same on a GPU; BENCH_ARGS passes more options (see --help).
DEVICE        ?= cpu
BENCH_THREADS ?= 1
BENCH_DATA    ?= citeulike gowalla
bench: venv
	$(SNAKE) $(foreach ds,$(BENCH_DATA),data/atomic/$(ds)/stats.json)
	OMP_NUM_THREADS=$(BENCH_THREADS) $(BIN)/python -m specbench.bench --device $(DEVICE) --datasets $(BENCH_DATA) $(BENCH_ARGS)

envs/specbench.yaml: envs/requirements.txt specbench/envfile.py
	$(PYTHON) specbench/envfile.py envs/requirements.txt > $@

envs/constraints.txt: venv
	{ sed -n '1,3p' $@; $(BIN)/pip freeze --exclude-editable | grep -viE '^(torch|recbole|specbench)=='; } > $@.tmp && mv $@.tmp $@

clean-results:
	rm -rf results/runs results/tables results/figures
