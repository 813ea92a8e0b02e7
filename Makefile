# The README's two commands: `make reproduce` and `make test`. Each creates .venv on first use
# and installs the pinned environment (envs/requirements.txt); nothing else is needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The CPU wheel of torch 2.13.0; with CUDA, e.g. `make TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128" reproduce`.
TORCH  ?= torch==2.13.0
CORES  ?= 2
SNAKE  := PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/snakemake --cores $(CORES)

.PHONY: reproduce test report bench paper clean-results venv

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

test: venv
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest -q

envs/specbench.yaml: envs/requirements.txt specbench/envfile.py
	$(PYTHON) specbench/envfile.py envs/requirements.txt > $@

envs/constraints.txt: venv
	{ sed -n '1,3p' $@; $(BIN)/pip freeze --exclude-editable | grep -viE '^(torch|recbole|specbench)=='; } > $@.tmp && mv $@.tmp $@

clean-results:
	rm -rf results/runs results/tables results/figures
