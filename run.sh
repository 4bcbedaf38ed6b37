#!/usr/bin/env bash
# ./run.sh demo : set up the environments and dance to the bundled example song in Blender 5.3 -> out/
# ./run.sh test : set up the environments, lint, build the extension's zips, then run every test
#                 on Blender 4.5 LTS (.venv) and the extension's tests again on Blender 5.3
#                 (.venv-blender)
# Both are idempotent: an environment is reinstalled only when what it is built from changes.
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}  # 3.11: the backend, training, the tests, Blender 4.5 LTS's bpy module
VENV=.venv
BLENDER_VENV=.venv-blender  # Python 3.13 with Blender 5.3's bpy module
BLENDER_REQUIREMENTS=tests/requirements-blender.txt
EXTENSION_TESTS=(tests/test_blender_extension.py tests/test_projection.py tests/test_pose_pass.py
    tests/test_pose_guides.py tests/test_retarget_blender.py tests/test_extension_package.py
    tests/test_extension_install.py tests/test_faults_blender.py)

# Python 3.13 for Blender 5.3: $PYTHON313, else python3.13 on the PATH, else pyenv's newest 3.13.
python313() {
    if [ -n "${PYTHON313:-}" ]; then echo "$PYTHON313"; return; fi
    if command -v python3.13 >/dev/null 2>&1 && python3.13 -c "" >/dev/null 2>&1; then command -v python3.13; return; fi
    if command -v pyenv >/dev/null 2>&1; then
        local version
        version=$(pyenv versions --bare | grep -E '^3\.13(\.[0-9]+)?$' | sort -V | tail -n 1 || true)
        if [ -n "$version" ]; then echo "$(pyenv root)/versions/$version/bin/python3.13"; return; fi
    fi
    echo "error: Python 3.13 (for Blender 5.3's bpy module) not found: set PYTHON313=/path/to/python3.13" >&2
    exit 2
}

# $1 Python, $2 venv, $3 stamp name, $4 file whose hash the stamp holds, then the pip install arguments.
ensure_venv() {
    local python=$1 venv=$2 stamp="$2/.installed-$3" source=$4 want
    shift 4
    want=$(sha256sum "$source" | cut -c1-16)
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        return
    fi
    [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
    # No wheel cache: pip's cache buffers and keeps a second copy of every download (hundreds
    # of MB for each bpy wheel), disk a venv that is rebuilt only when its inputs change never uses.
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-cache-dir "$@"
    echo "$want" > "$stamp"
}

ensure_blender_venv() {
    ensure_venv "$(python313)" "$BLENDER_VENV" blender "$BLENDER_REQUIREMENTS" -r "$BLENDER_REQUIREMENTS"
}

case "${1:-demo}" in
    demo)
        ensure_venv "$PYTHON" "$VENV" demo pyproject.toml -e .
        ensure_blender_venv
        mkdir -p out
        # Blender 5.3 (the bpy module) runs the extension; the backend runs from .venv.
        BAILANDO_BACKEND_PYTHON="$PWD/$VENV/bin/python" "$BLENDER_VENV/bin/python" -m bailando_blender.batch \
            examples/florist_excerpt.ogg --out out/florist_excerpt_dance.blend --preview --pose2d out/florist_excerpt_pose2d
        "$VENV/bin/python" -m backend generate examples/florist_excerpt.ogg --out out/florist_excerpt_dance.bvh --quiet
        echo "out/florist_excerpt_dance.bvh"
        ;;
    test)
        ensure_venv "$PYTHON" "$VENV" test pyproject.toml -e ".[test]"
        ensure_blender_venv
        "$VENV/bin/python" -m ruff check .
        # The zips users install, one per platform, each validated by Blender's own tool.
        "$VENV/bin/python" scripts/build_extension.py build --output-dir dist
        version=$(sed -n 's/^version = "\(.*\)"/\1/p' blender_manifest.toml)
        export BAILANDO_EXTENSION_ZIP="$PWD/dist/bailando_blender-$version-linux_x64.zip"
        "$VENV/bin/python" -m pytest -q "${@:2}"
        BAILANDO_BACKEND_PYTHON="$PWD/$VENV/bin/python" "$BLENDER_VENV/bin/python" -m pytest -q -p no:cacheprovider \
            "${EXTENSION_TESTS[@]}" "${@:2}"
        ;;
    *)
        echo "usage: ./run.sh demo|test" >&2
        exit 2
        ;;
esac
