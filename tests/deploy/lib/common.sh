# Sourced by the deployment tests (tests/deploy/*.sh), not run on its own.
# shellcheck shell=bash

# skip REASON: a missing tool or peer. SKIPPED and exit 0, or a failure under
# DAAS_REQUIRE_PEERS=1 (CI), so a real-peer test can never silently vanish.
skip() {
    if [[ "${DAAS_REQUIRE_PEERS:-}" == 1 ]]; then
        echo "FAIL: $1 (DAAS_REQUIRE_PEERS=1)" >&2
        exit 1
    fi
    echo "SKIPPED: $1"
    exit 0
}

# Python helpers beside this file (cfn_yaml.py) for the tests' inline Python.
export PYTHONPATH="${BASH_SOURCE[0]%/*}${PYTHONPATH:+:$PYTHONPATH}"
