# Two commands do everything on a fresh machine:
#   make demo   install, then train + evaluate the demo model on generated data
#   make test   install, then run the whole test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test install clean

$(VENV)/.installed: pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e '.[tests]'
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(PY) tools/demo.py

test: $(VENV)/.installed
	$(PY) -m pytest

clean:
	rm -rf $(VENV) work_dirs data/demo_shapes
