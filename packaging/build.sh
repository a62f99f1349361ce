#!/bin/sh
# Build BOSS's .deb (dpkg-buildpackage) and RPM (rpmbuild) into OUTDIR:
#
#     packaging/build.sh OUTDIR [deb] [rpm]      (default: both)
#
# Both are built from a copy of the source tree under a temporary directory
# (the repository is left as it was), each with a private virtualenv at
# /opt/boss (packaging/venv.sh). The wheels come from $BOSS_WHEELHOUSE
# (default ~/.cache/boss-packaging/wheelhouse), filled from the package
# indexes on the first build. Needs dpkg-dev and debhelper for the .deb,
# rpm (Debian's package is enough) for the RPM, and python3.11 with venv.
# BOSS_PACKAGING_FAST=1 (the tests) compresses with gzip -1 instead of xz:
# a third of the build's time, a package a third larger.
set -eu

OUT=$(mkdir -p "$1" && cd "$1" && pwd)
shift
WHAT=${*:-deb rpm}
SRC=$(cd "$(dirname "$0")/.." && pwd)
export BOSS_WHEELHOUSE=${BOSS_WHEELHOUSE:-${XDG_CACHE_HOME:-$HOME/.cache}/boss-packaging/wheelhouse}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/boss-packaging.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

copy_tree() {  # the source tree without build output, caches and virtualenvs
    mkdir -p "$1"
    rsync -a --exclude .git --exclude '.venv*' --exclude '*.egg-info' --exclude build \
        --exclude __pycache__ --exclude .pytest_cache --exclude .ruff_cache \
        --exclude tests/webui/artifacts "$SRC/" "$1/"
}

RPMDEFS=""
if [ "${BOSS_PACKAGING_FAST:-}" = 1 ]; then
    export DPKG_DEB_COMPRESSOR_TYPE=gzip DPKG_DEB_COMPRESSOR_LEVEL=1
    RPMDEFS="_binary_payload w1.gzdio"
fi

for kind in $WHAT; do
    case $kind in
    deb)
        copy_tree "$WORK/deb/boss"
        cp -r "$SRC/packaging/debian" "$WORK/deb/boss/debian"
        (cd "$WORK/deb/boss" && dpkg-buildpackage -us -uc -b) >"$WORK/deb.log" 2>&1 || {
            tail -n 60 "$WORK/deb.log" >&2
            exit 1
        }
        cp "$WORK"/deb/*.deb "$OUT/"
        ;;
    rpm)
        copy_tree "$WORK/rpm/src"
        # Debian's rpm has no database of the build dependencies: --nodeps
        rpmbuild -bb --nodeps --define "_topdir $WORK/rpm/top" ${RPMDEFS:+--define "$RPMDEFS"} \
            --define "srcdir $WORK/rpm/src" "$WORK/rpm/src/packaging/rpm/boss.spec" \
            >"$WORK/rpm.log" 2>&1 || {
            tail -n 60 "$WORK/rpm.log" >&2
            exit 1
        }
        find "$WORK/rpm/top/RPMS" -name '*.rpm' -exec cp {} "$OUT/" \;
        ;;
    *)
        echo "build.sh: unknown package kind $kind (deb, rpm)" >&2
        exit 2
        ;;
    esac
done
ls -l "$OUT"
