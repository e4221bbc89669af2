#!/usr/bin/env bash
# `make package-test`: check the Linux build made by packaging/linux/build.sh, then run
# `tlstudio --smoke-test` from the build output and from the unpacked .deb, in a bare
# environment (no virtualenv, no PYTHONPATH, an empty HOME), so anything the bundle lacks
# shows. With TLSTUDIO_INSTALL_TEST=1 (root, apt): also install the .deb as a user would
# (apt brings the libraries its Depends name), start tlstudio the way the menu entry does --
# on a real X server when Xvfb is installed, so Qt's xcb plugin and those libraries are
# checked too -- and remove it again.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
PY=${PYTHON:-$ROOT/.venv/bin/python}
DEB=$(ls -t dist/tlstudio_*.deb | head -1)
TARBALL=$(ls -t dist/tlstudio-*-linux-*.tar.gz | head -1)
SENTINEL="TLSTUDIO SMOKE TEST PASSED"
WORK=$(mktemp -d /tmp/tlstudio-package-test.XXXXXX)
JOBS=()  # background jobs (the tarball's reading, Xvfb): stopped however this script ends
cleanup() { for job in "${JOBS[@]}"; do kill "$job" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

step() { printf '\n== %s (%s)\n' "$1" "$(date +%T)"; }

# Run a command in a bare environment from an empty folder (with DISPLAY=$SMOKE_DISPLAY when
# that is set); pass if its last line is the sentinel.
smoke() {
    local label=$1; shift
    mkdir -p "$WORK/home" "$WORK/cwd"
    local log="$WORK/smoke-$label.log"
    if ! (cd "$WORK/cwd" && env -i HOME="$WORK/home" PATH=/usr/local/bin:/usr/bin:/bin \
            LANG=C.UTF-8 ${SMOKE_DISPLAY:+DISPLAY=$SMOKE_DISPLAY} "$@" >"$log" 2>&1); then
        cat "$log"; echo "package-test: the smoke test failed ($label)"; exit 1
    fi
    cat "$log"
    if [ "$(grep -v '^This plugin does not support' "$log" | tail -1)" != "$SENTINEL" ]; then
        echo "package-test: no '$SENTINEL' line ($label)"; exit 1
    fi
    if [ -n "$(ls -A "$WORK/cwd")" ]; then
        echo "package-test: the smoke test wrote into its working folder ($label)"; exit 1
    fi
}

# The tarball is read in full (gzip's checksum checked on the way) while the rest runs: one
# core decompresses, the other checks and smoke-tests.
tar -tzf "$TARBALL" > "$WORK/tarball.list" 2>"$WORK/tarball.err" &
TARBALL_JOB=$!
JOBS+=("$TARBALL_JOB")

step "bundle and .deb contents, libraries"
"$PY" packaging/check_bundle.py dist/tlstudio --deb "$DEB"

step "smoke test: build output (dist/tlstudio)"
smoke dist "$ROOT/dist/tlstudio/tlstudio" --smoke-test

# The installed .deb is smoke-tested below when TLSTUDIO_INSTALL_TEST=1 (CI): the unpacked
# one would only repeat it, so it runs when no install test follows.
if [ "${TLSTUDIO_INSTALL_TEST:-0}" != 1 ]; then
    step "smoke test: unpacked .deb ($DEB)"
    dpkg-deb -x "$DEB" "$WORK/deb"
    smoke deb "$WORK/deb/opt/tlstudio/tlstudio" --smoke-test
    rm -rf "$WORK/deb"
fi

step "tarball ($TARBALL)"
wait "$TARBALL_JOB" || { cat "$WORK/tarball.err"; echo "package-test: the tarball is damaged"; exit 1; }
grep -qx 'tlstudio/tlstudio' "$WORK/tarball.list" || { echo "tarball lacks tlstudio/tlstudio"; exit 1; }
echo "tarball ok"

if [ "${TLSTUDIO_INSTALL_TEST:-0}" = 1 ]; then
    step "install the .deb with apt, start it as the menu does, remove it"
    { apt-get update -q && apt-get install -y -q "./$DEB"; } >"$WORK/apt.log" 2>&1 \
        || { cat "$WORK/apt.log"; exit 1; }
    EXEC=$(sed -n 's/^Exec=//p' /usr/share/applications/tlstudio.desktop)
    if command -v Xvfb >/dev/null; then
        SMOKE_DISPLAY=:$((90 + RANDOM % 100))
        Xvfb "$SMOKE_DISPLAY" -screen 0 1280x800x24 -nolisten tcp >"$WORK/xvfb.log" 2>&1 &
        JOBS+=("$!")
        sleep 2
    fi
    smoke installed sh -c "$EXEC --smoke-test"
    if [ -n "${SMOKE_DISPLAY:-}" ]; then
        grep -q "platform xcb" "$WORK/smoke-installed.log" \
            || { echo "package-test: the installed app did not use the X server"; exit 1; }
        unset SMOKE_DISPLAY
    else
        echo "(Xvfb is not installed: the installed app was checked offscreen only)"
    fi
    apt-get purge -y -q tlstudio >/dev/null
    [ ! -e /opt/tlstudio ] || { echo "apt purge left /opt/tlstudio behind"; exit 1; }
fi

step "package-test passed"
du -sh dist/tlstudio "$TARBALL" "$DEB"
