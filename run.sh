#!/usr/bin/env bash
# ./run.sh demo : set up .venv and dance to the bundled example song -> out/
# ./run.sh test : set up .venv with the test tools, then lint and run the tests (and the
#                 extension's tests again on Blender 4.5 LTS, in .venv-blender-lts)
# Both are idempotent: an environment is reinstalled only when what it is built from changes.
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
VENV=.venv
LTS_VENV=.venv-blender-lts
LTS_REQUIREMENTS=tests/requirements-blender-lts.txt

# $1 venv, $2 stamp name, $3 file whose hash the stamp holds, then the pip install arguments.
ensure_venv() {
    local venv=$1 stamp="$1/.installed-$2" source=$3 want
    shift 3
    want=$(sha256sum "$source" | cut -c1-16)
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        return
    fi
    [ -x "$venv/bin/python" ] || "$PYTHON" -m venv "$venv"
    # No wheel cache: pip's cache buffers and keeps a second copy of every download (hundreds
    # of MB for each bpy wheel), disk a venv that is rebuilt only when its inputs change never uses.
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-cache-dir "$@"
    echo "$want" > "$stamp"
}

case "${1:-demo}" in
    demo)
        ensure_venv "$VENV" blender pyproject.toml -e ".[blender]"
        mkdir -p out
        "$VENV/bin/python" -m bailando_blender.batch examples/florist_excerpt.ogg \
            --out out/florist_excerpt_dance.blend --preview --pose2d out/florist_excerpt_pose2d
        "$VENV/bin/python" -m backend generate examples/florist_excerpt.ogg --out out/florist_excerpt_dance.bvh --quiet
        echo "out/florist_excerpt_dance.bvh"
        ;;
    test)
        ensure_venv "$VENV" test pyproject.toml -e ".[test]"
        "$VENV/bin/python" -m ruff check .
        "$VENV/bin/python" -m pytest -q "${@:2}"
        ensure_venv "$LTS_VENV" lts "$LTS_REQUIREMENTS" -r "$LTS_REQUIREMENTS"
        BAILANDO_BACKEND_PYTHON="$PWD/$VENV/bin/python" "$LTS_VENV/bin/python" -m pytest -q -p no:cacheprovider \
            tests/test_blender_extension.py tests/test_projection.py tests/test_pose_pass.py tests/test_pose_guides.py tests/test_retarget_blender.py "${@:2}"
        ;;
    *)
        echo "usage: ./run.sh demo|test" >&2
        exit 2
        ;;
esac
