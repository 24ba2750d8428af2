# Two commands for a reader: `make book` and `make test`. Everything else is for rerunning parts.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := book

PYTHON      ?= python3
VENV        ?= .venv
# On a GPU image or a Jetson, let the venv see the system's torch: make book VENV_FLAGS=--system-site-packages
VENV_FLAGS  ?=
TORCH_SPEC  ?= torch==2.13.0
EXTRAS      ?= run,book
# An offline wheelhouse made by `make wheelhouse`: make book WHEELHOUSE=wheelhouse
WHEELHOUSE  ?=
PROFILE     ?= auto
DEVICE      ?= auto
PARAMS      ?=
NAME        ?=

comma := ,
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))
PIP_SRC := $(if $(WHEELHOUSE),--no-index --find-links $(WHEELHOUSE),)

include mk/browser.mk

.PHONY: book execute html chapter test unit smoke browser-test wheelhouse clean install

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV_FLAGS) $(VENV)
	@$(PY) -c "import torch" 2>/dev/null && echo "torch already importable: $$($(PY) -c 'import torch; print(torch.__version__)')" \
	  || $(PY) -m pip install --disable-pip-version-check $(PIP_SRC) "$(TORCH_SPEC)"
	$(if $(WHEELHOUSE),$(PY) -m pip install --disable-pip-version-check $(PIP_SRC) setuptools wheel,)
	$(PY) -m pip install --disable-pip-version-check $(PIP_SRC) $(if $(WHEELHOUSE),--no-build-isolation,) -e ".[$(EXTRAS)]"
	$(PY) -m ipykernel install --sys-prefix --name pi05perf --display-name "Python (pi05perf)" >/dev/null
	@touch $@

book: $(STAMP)
	$(PY) -m pi05perf.book execute --profile $(PROFILE) --device $(DEVICE) $(PARAMS)
	$(PY) -m pi05perf.book html

# execute every chapter without building HTML (what a GPU run needs)
execute: $(STAMP)
	$(PY) -m pi05perf.book execute --profile $(PROFILE) --device $(DEVICE) $(PARAMS)

html: $(STAMP)
	$(PY) -m pi05perf.book html

# make chapter NAME=ch03_prefill_breakdown [PROFILE=full] [PARAMS="-p prefix_tokens=512"]
chapter: $(STAMP)
	@test -n "$(NAME)" || { echo "error: NAME is required; chapters: $$($(PY) -m pi05perf.book list | tr '\n' ' ')"; exit 2; }
	$(PY) -m pi05perf.book execute --profile $(PROFILE) --device $(DEVICE) $(PARAMS) $(NAME) intro
	$(PY) -m pi05perf.book html

test: browser-deps
	$(MAKE) install EXTRAS=run,book,test
	$(PY) -m pytest -q --ignore=tests/test_browser.py
	$(PY) -m pi05perf.book execute --profile smoke --device cpu
	$(PY) -m pi05perf.book html
	$(PY) -m pytest -q tests/test_browser.py

# Wheels of the book's own dependencies (torch excluded: the device provides it) for an
# air-gapped machine: make wheelhouse WHEEL_PLATFORM=manylinux_2_28_aarch64 WHEEL_PYTHON=3.12
WHEEL_PLATFORM ?= manylinux_2_28_x86_64
WHEEL_PYTHON   ?= 3.12
WHEEL_EXTRAS   ?= run,book
WHEEL_SKIP     ?=
wheelhouse: $(STAMP)
	$(PY) -m pi05perf.wheelhouse --platform $(WHEEL_PLATFORM) --python $(WHEEL_PYTHON) \
	  --extras $(WHEEL_EXTRAS) --skip "$(WHEEL_SKIP)" --dest wheelhouse

clean:
	rm -rf _build
