# `make lab`: set up and open JupyterLab on notebooks/ (offline simulator when no key is set).
# `make test`: set up and run lint, types, import layers and every test (notebooks and browser checks included).
# `make test-fast`: the in-process tests only, for the edit loop (no kernels, browser, notebooks, soak or
# third-party server).
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
LAB_OVERRIDES := {"@jupyter-widgets/jupyterlab-manager:plugin": {"saveState": true}}

.PHONY: lab test test-fast setup chromium bench notebooks

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@# this JupyterLab saves widget state in the notebook: reopened, a panel shows as it was left,
	@# not "Error displaying widget: model not found" (Settings > Save Widget State Automatically)
	mkdir -p $(VENV)/share/jupyter/lab/settings
	echo '$(LAB_OVERRIDES)' > $(VENV)/share/jupyter/lab/settings/overrides.json
	touch $@

setup: $(VENV)/.installed

chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -q && $$SUDO apt-get install -y -q chromium; }

test: setup chromium
	$(VENV)/bin/ruff check qwen_magics tests bench notebooks
	$(VENV)/bin/ruff format --check qwen_magics tests bench notebooks
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(PY) -m pytest

# pyproject's addopts without nbval, whose plugin alone imports nbformat (over a second here)
FAST_ADDOPTS := -ra --strict-markers --strict-config -p no:cacheprovider
test-fast: setup
	$(PY) -m pytest tests -p no:nbval -o addopts="$(FAST_ADDOPTS)" -m "not kernel and not browser and not slow and not peer"

# Stop JupyterLab with Ctrl-C in this terminal (answer y), or File > Shut Down in the browser.
lab: setup
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks $$([ "$$(id -u)" = 0 ] && echo --allow-root)

bench: setup
	for b in bench/*.py; do $(PY) $$b || exit 1; done

# Re-execute the notebooks offline in place, so their saved outputs are what nbval checks. Answers
# stream at a real qwen-plus's pace, so saved footers show believable speeds (about 55 tok/s; at no
# delay they claimed 20,000); it takes about a minute. nbval reruns them at full speed, timings sanitized.
NOTEBOOK_TOKENS_PER_SECOND ?= 60
notebooks: setup
	@# lesson 07 replays its last answer from its own saved copy: its second run saves it replayed
	for nb in notebooks/*.ipynb notebooks/07_history_and_replay.ipynb; do \
	  env -u DASHSCOPE_API_KEY -u DASHSCOPE_BASE_URL QWEN_HISTORY=off QWEN_BATCHES=$$(mktemp -d) QWEN_OFFLINE=1 QWEN_OFFLINE_TOKENS_PER_SECOND=$(NOTEBOOK_TOKENS_PER_SECOND) \
	    $(VENV)/bin/jupyter nbconvert --to notebook --execute --inplace $$nb || exit 1; \
	done
