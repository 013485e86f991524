# Two commands do everything on a fresh machine:
#   make demo   install, then train + evaluate the demo model on generated data
#   make test   install, then lint and run the whole test suite (what CI runs)
# on upstream OpenMMLab (the extra [openmmlab]); and for the maintained fork:
#   make test-onedl   the tests that touch mmseg/mmengine behaviour on OneDL
#                     (the extra [onedl], in $(VENV_ONEDL); CI runs it too)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# pytest options; CI adds the slowest tests' durations to its log
PYTEST_ARGS ?=
# one pytest worker per core, each test module on one worker (module
# fixtures such as the resume runs are built once), the longest modules
# first (tests/conftest.py); PYTEST_WORKERS=0 runs everything in this
# process
PYTEST_WORKERS ?= auto

.PHONY: demo test lint install clean test-onedl install-onedl

# pip installs without byte-compiling (it would compile all 15,000 files of
# the environment on one core, about a minute here); Python compiles what is
# imported, once, into __pycache__, which every later interpreter reuses.
# RUN does that even where the environment sets PYTHONDONTWRITEBYTECODE
# (otherwise each of the suite's fresh interpreters, torchrun ranks and the
# installed wheel's tools among them, would compile torch and mmseg again)
RUN := PYTHONDONTWRITEBYTECODE= $(PY)

$(VENV)/.installed: pyproject.toml build_backend/startup_pth.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install --no-compile -e '.[openmmlab,tests]'
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(RUN) tools/demo.py

lint: $(VENV)/.installed
	$(PY) -m flake8 mmseg_plugins mmseg_plugins_mmcv_ops tools tests build_backend

test: lint
	$(RUN) -m pytest -n $(PYTEST_WORKERS) --dist loadscope --no-loadscope-reorder \
		$(PYTEST_ARGS)

# --- OneDL (onedl-mmsegmentation, onedl-mmengine, onedl-mmcv) -------------
VENV_ONEDL ?= .venv-onedl
PY_ONEDL := $(VENV_ONEDL)/bin/python
#: the tests of what depends on mmseg/mmengine/mmcv behaviour: compat layer,
#: config loading, hooks and exact resume, checkpoints, registry, models,
#: tools (tests marked upstream_only skip themselves there)
ONEDL_TESTS ?= tests/test_compat.py tests/compat \
	tests/test_mmseg_plugins_mmcv_ops.py \
	tests/test_forward.py \
	tests/test_configs.py tests/test_hooks.py tests/test_checkpoint.py \
	tests/test_registry.py tests/models tests/tools

$(VENV_ONEDL)/.installed: pyproject.toml build_backend/startup_pth.py
	$(PYTHON) -m venv $(VENV_ONEDL)
	$(PY_ONEDL) -m pip install --upgrade pip
	$(PY_ONEDL) -m pip install --no-compile -e '.[onedl,tests]'
	touch $@

install-onedl: $(VENV_ONEDL)/.installed

test-onedl: $(VENV_ONEDL)/.installed
	PYTHONDONTWRITEBYTECODE= $(PY_ONEDL) -m pytest -n $(PYTEST_WORKERS) \
		--dist loadscope --no-loadscope-reorder $(PYTEST_ARGS) $(ONEDL_TESTS)
# ---------------------------------------------------------------------------

clean:
	rm -rf $(VENV) $(VENV_ONEDL) work_dirs data/demo_shapes
