# Sourced by the shell tests (tests/cluster/run.sh, tests/container/run.sh):
# `skip REASON` ends a test that cannot run here. Under CI=true that is a
# failure (CI installs what the tests need); elsewhere the test passes with
# a message naming what is missing. Set `test_name` before sourcing.
skip() {
    if [ "${CI:-}" = true ]; then
        echo "${test_name:?}: FAILED: $*" >&2
        exit 1
    fi
    echo "${test_name:?}: skipped: $*" >&2
    exit 0
}
