# Two commands for a reader: `make book` and `make test`. Everything else is for rerunning parts.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := book

# The interpreter .venv is made from. Where its environment already has torch (a GPU server's
# venv, a Jetson's system Python), .venv sees that environment's packages (a .pth file), so torch
# is never reinstalled: make book PYTHON=/path/to/torch-venv/bin/python WHEELHOUSE=wheelhouse
PYTHON      ?= python3
VENV        ?= .venv
# extra `python -m venv` flags (e.g. --system-site-packages for JetPack's system TensorRT)
VENV_FLAGS  ?=
TORCH_SPEC  ?= torch==2.13.0
EXTRAS      ?= run,book
# An offline wheelhouse made by `make wheelhouse`: make book WHEELHOUSE=wheelhouse
WHEELHOUSE  ?=
PROFILE     ?= auto
DEVICE      ?= auto
PARAMS      ?=
NAME        ?=
# the device the published book presents (a slug under data/notebooks/); default: the newest run
REPORT_DEVICE ?=
export REPORT_DEVICE
# provenance where the tree is a copy without .git: PI05PERF_GIT_COMMIT=<hash> make book
PI05PERF_GIT_COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null)
export PI05PERF_GIT_COMMIT

comma := ,
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))
PIP_SRC := $(if $(WHEELHOUSE),--no-index --find-links $(WHEELHOUSE),)

include mk/browser.mk

.PHONY: book execute html smoke-site chapter test wheelhouse clean install vega-bundle

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV_FLAGS) $(VENV)
	@# a venv made from another venv's python sees only the *base* interpreter's packages:
	@# link PYTHON's own site directories when they hold torch
	@if $(PYTHON) -c "import torch" 2>/dev/null; then \
	  site=$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'); \
	  $(PYTHON) -c 'import sys; print("\n".join(p for p in sys.path if p.endswith(("site-packages", "dist-packages"))))' \
	    > "$$site/_pi05perf_base_env.pth"; \
	  echo "$(VENV) sees the packages of $(PYTHON): $$(tr '\n' ' ' < "$$site/_pi05perf_base_env.pth")"; \
	fi
	@$(PY) -c "import torch" 2>/dev/null && echo "torch already importable: $$($(PY) -c 'import torch; print(torch.__version__)')" \
	  || $(PY) -m pip install --disable-pip-version-check $(PIP_SRC) "$(TORCH_SPEC)"
	$(if $(WHEELHOUSE),$(PY) -m pip install --disable-pip-version-check $(PIP_SRC) setuptools wheel,)
	$(PY) -m pip install --disable-pip-version-check $(PIP_SRC) $(if $(WHEELHOUSE),--no-build-isolation,) -e ".[$(EXTRAS)]"
	$(PY) -m ipykernel install --sys-prefix --name pi05perf --display-name "Python (pi05perf)" >/dev/null
	@touch $@

# On a CUDA GPU: execute every chapter (full profile), commit the notebooks to data/notebooks/<device>/,
# build the published book. Without one: build the published book from the committed notebooks
# (nothing executes: a CPU can only smoke-run, and smoke runs are never published).
# A failed chapter never stops the others; the exit status is non-zero at the end.
book: $(STAMP)
	@rc=0; \
	if $(PY) -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then \
	  $(PY) -m pi05perf.book execute --profile $(PROFILE) --device $(DEVICE) $(PARAMS) || rc=$$?; \
	else echo "== no CUDA GPU here: presenting the committed runs (data/notebooks/), executing nothing"; fi; \
	$(PY) -m pi05perf.book html --site published || rc=$$?; \
	exit $$rc

# execute every chapter without building HTML (what a GPU run needs)
execute: $(STAMP)
	$(PY) -m pi05perf.book execute --profile $(PROFILE) --device $(DEVICE) $(PARAMS)

# the published book (data/notebooks/) and the smoke site (this machine's last smoke run)
html: $(STAMP)
	$(PY) -m pi05perf.book html --site published

smoke-site: $(STAMP)
	$(PY) -m pi05perf.book html --site smoke

# make chapter NAME=ch03_prefill_breakdown [PROFILE=full] [PARAMS="-p prefix_tokens 512"]
# executes it, then rebuilds the site its profile belongs to (full: published; smoke: smoke site)
chapter: $(STAMP)
	@test -n "$(NAME)" || { echo "error: NAME is required; chapters: $$($(PY) -m pi05perf.book list | tr '\n' ' ')"; exit 2; }
	$(PY) -m pi05perf.book chapter --profile $(PROFILE) --device $(DEVICE) $(PARAMS) $(NAME)

# unit tests; every chapter in the smoke profile into the smoke site; the published book;
# both checked in headless Chromium. Every step runs; any failure fails the target at the end.
test: browser-deps
	$(MAKE) install EXTRAS=run,book,test
	@rc=0; \
	$(PY) -m pytest -q --ignore=tests/test_browser.py || rc=$$?; \
	$(PY) -m pi05perf.book execute --profile smoke --device cpu || rc=$$?; \
	$(PY) -m pi05perf.book html --site smoke || rc=$$?; \
	$(PY) -m pi05perf.book html --site published || rc=$$?; \
	$(PY) -m pytest -q tests/test_browser.py || rc=$$?; \
	exit $$rc

# Wheels of the book's own dependencies (torch excluded: the device provides it) for an
# air-gapped machine: make wheelhouse WHEEL_PLATFORM=manylinux_2_28_aarch64 WHEEL_PYTHON=3.12
WHEEL_PLATFORM ?= manylinux_2_28_x86_64
WHEEL_PYTHON   ?= 3.12
WHEEL_EXTRAS   ?= run,book
WHEEL_SKIP     ?=
# a file listing what the target already has (`pip list --format=freeze` run there), left out
WHEEL_SKIP_FROM ?=
wheelhouse: $(STAMP)
	$(PY) -m pi05perf.wheelhouse --platform $(WHEEL_PLATFORM) --python $(WHEEL_PYTHON) \
	  --extras $(WHEEL_EXTRAS) --skip "$(WHEEL_SKIP)" $(if $(WHEEL_SKIP_FROM),--skip-from $(WHEEL_SKIP_FROM),) --dest wheelhouse

# rewrite the committed vega/vega-lite/vega-embed bundle for the installed altair (needs vl-convert-python)
vega-bundle: $(STAMP)
	$(PY) -c "from pi05perf.charts import write_vega_bundle; print(write_vega_bundle('_static'))"

clean:
	rm -rf _build
