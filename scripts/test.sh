#!/usr/bin/env bash
# Install what the tests need (Debian packages + .venv with the test extra), then run them.
# Extra arguments go to pytest, e.g. scripts/test.sh -k cli -x
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
# The layers contract in pyproject.toml: imports never climb a layer.
.venv/bin/lint-imports
# Two processes: most of the suite waits on daemons, workers and brokers. Later -n wins.
exec .venv/bin/python -m pytest -n 2 --dist worksteal "$@"
