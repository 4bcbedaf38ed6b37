#!/usr/bin/env bash
# ./run.sh demo : set up .venv and dance to the bundled example song -> out/
# ./run.sh test : set up .venv with the test tools, then lint and run the tests
# Both are idempotent: the environment is reinstalled only when pyproject.toml changes.
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
VENV=.venv

ensure_env() {  # $1: the pip extras to install ("" for none)
    local extras=$1 stamp want
    stamp="$VENV/.installed${extras:+-$extras}"
    want=$(sha256sum pyproject.toml | cut -c1-16)
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        return
    fi
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e ".${extras:+[$extras]}"
    echo "$want" > "$stamp"
}

case "${1:-demo}" in
    demo)
        ensure_env ""
        mkdir -p out
        "$VENV/bin/python" -m backend generate examples/florist_excerpt.ogg --out out/florist_excerpt_dance.npz
        "$VENV/bin/python" -m backend generate examples/florist_excerpt.ogg --out out/florist_excerpt_dance.bvh --quiet
        ;;
    test)
        ensure_env test
        "$VENV/bin/python" -m ruff check .
        "$VENV/bin/python" -m pytest -q "${@:2}"
        ;;
    *)
        echo "usage: ./run.sh demo|test" >&2
        exit 2
        ;;
esac
