# Kybernetes: the two commands a user needs are `make cluster` and `make test`.
# Everything they need (system packages, the venv) is installed on first use.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
STATE  ?= $(CURDIR)/.kyb
PORT   ?= 6443

.PHONY: help venv host test-tools proto images test test-unit test-integration bench cluster \
        cluster-down control-plane control-plane-down monitoring monitoring-down clean

help:
	@echo "make cluster       a Kybernetes cluster in containers (NODES=2 ETCD=1 APISERVERS=1)"
	@echo "make cluster-down  remove it (containers, networks, routes, volumes)"
	@echo "make images        build the images (Debian base by debootstrap, no registry needed)"
	@echo "make cluster PROVIDER=vagrant  the same on Vagrant VMs (deploy/README.md)"
	@echo "make monitoring    Prometheus scraping every component of the cluster"
	@echo "make control-plane just the API server and its etcd as local processes"
	@echo "make test          run the test suite (installs what is missing)"
	@echo "make bench         run the benchmarks"
	@echo "make proto         regenerate services/api/gen from proto/"

host:
	@deploy/host/ensure.sh python etcd docker

$(STAMP): pyproject.toml
	@deploy/host/ensure.sh python
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

proto: $(STAMP)
	$(PY) -m services.api.codegen

# The tests also validate the Vagrantfile and lint the shell scripts.
test-tools:
	@deploy/host/ensure.sh deploy

test: host test-tools $(STAMP)
	$(PY) -m pytest

test-unit: $(STAMP)
	$(PY) -m pytest tests/unit

test-integration: host $(STAMP)
	$(PY) -m pytest tests/integration

bench: host $(STAMP)
	$(PY) -m tests.bench

images: host $(STAMP)
	@deploy/images/build.sh

cluster: images
ifeq ($(PROVIDER),vagrant)
	@deploy/vagrant/up.sh
else
	@$(VENV)/bin/kyb-cluster up $(if $(NODES),--nodes $(NODES)) $(if $(ETCD),--etcd $(ETCD)) \
		$(if $(APISERVERS),--apiservers $(APISERVERS))
endif

cluster-down:
ifeq ($(PROVIDER),vagrant)
	@deploy/vagrant/down.sh
else
	@deploy/monitoring.sh down >/dev/null 2>&1 || true
	@test -x $(VENV)/bin/kyb-cluster && $(VENV)/bin/kyb-cluster down || true
endif

monitoring: host $(STAMP)
	@deploy/monitoring.sh up

monitoring-down:
	@deploy/monitoring.sh down

control-plane: host $(STAMP)
	@deploy/local/up.sh "$(STATE)" "$(PORT)"

control-plane-down:
	@deploy/local/down.sh "$(STATE)"

clean:
	rm -rf $(VENV) .pytest_cache
	find . -name __pycache__ -prune -exec rm -rf {} +
