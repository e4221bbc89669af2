#!/usr/bin/env bash
# Build tlstudio for Linux: the PyInstaller one-folder app (dist/tlstudio/), then
#   dist/tlstudio-VERSION-linux-ARCH.tar.gz   the folder, to unpack anywhere
#   dist/tlstudio_VERSION_DEBARCH.deb         /opt/tlstudio, /usr/bin/tlstudio, menu entry, icons
# Usage: packaging/linux/build.sh   (PYTHON=... to use another environment than .venv)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
PY=${PYTHON:-$ROOT/.venv/bin/python}
HERE=packaging/linux
VERSION=$("$PY" -c "import tlstudio; print(tlstudio.__version__)")
MACHINE=$(uname -m)
DEBARCH=$(dpkg --print-architecture 2>/dev/null || echo amd64)
export QT_QPA_PLATFORM=offscreen HF_HUB_OFFLINE=1

# Libraries Qt's xcb and Wayland platform plugins and OpenGL need from the system; the rest
# is in the bundle (packaging/check_bundle.py fails the build if the bundle needs more).
# libxext6/libxrender1: X libraries PyInstaller bundles on build machines that have them
# (libXcursor, libXi, libXrandr, libXinerama) load them.
DEPENDS="libc6 (>= 2.28), libgl1, libegl1, libfontconfig1, libfreetype6, libx11-6, libx11-xcb1,\
 libxcb1, libxcb-cursor0, libxcb-glx0, libxcb-icccm4, libxcb-image0, libxcb-keysyms1,\
 libxcb-randr0, libxcb-render0, libxcb-render-util0, libxcb-shape0, libxcb-shm0, libxcb-sync1,\
 libxcb-util1, libxcb-xfixes0, libxcb-xinerama0, libxcb-xkb1, libxkbcommon0,\
 libxkbcommon-x11-0, libwayland-client0, libwayland-cursor0, libwayland-egl1, libdbus-1-3,\
 libxext6, libxrender1,\
 libglib2.0-0t64 | libglib2.0-0"

step() { printf '\n== %s (%s)\n' "$1" "$(date +%T)"; }

step "icons"
"$PY" packaging/make_icons.py build/icons

step "PyInstaller one-folder app"
TLSTUDIO_REQUIRE_SAMPLE=1 "$PY" -m PyInstaller --noconfirm --clean --log-level WARN \
    --distpath dist --workpath build/pyinstaller packaging/tlstudio.spec

step ".deb staging"
STAGE=build/deb/root
rm -rf build/deb
mkdir -p "$STAGE/DEBIAN" "$STAGE/opt" "$STAGE/usr/bin" "$STAGE/usr/share/applications" \
         "$STAGE/usr/share/icons/hicolor/scalable/apps"
cp -al dist/tlstudio "$STAGE/opt/tlstudio"  # hard links: no second copy of the bundle
install -m 755 $HERE/tlstudio.sh "$STAGE/usr/bin/tlstudio"
install -m 644 $HERE/tlstudio.desktop "$STAGE/usr/share/applications/tlstudio.desktop"
install -m 644 resources/tlstudio.svg "$STAGE/usr/share/icons/hicolor/scalable/apps/tlstudio.svg"
for size in 16 24 32 48 64 128 256 512; do
    mkdir -p "$STAGE/usr/share/icons/hicolor/${size}x${size}/apps"
    install -m 644 build/icons/tlstudio-$size.png \
        "$STAGE/usr/share/icons/hicolor/${size}x${size}/apps/tlstudio.png"
done
INSTALLED_SIZE=$(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)
sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$DEBARCH/" -e "s/@INSTALLED_SIZE@/$INSTALLED_SIZE/" \
    -e "s/@DEPENDS@/$DEPENDS/" $HERE/control.in > "$STAGE/DEBIAN/control"
install -m 755 $HERE/postinst "$STAGE/DEBIAN/postinst"
install -m 755 $HERE/postrm "$STAGE/DEBIAN/postrm"

# The .tar.gz and the .deb are compressed at the same time, each compressor on one core
# (after the staging: its hard links change the files' ctime, which tar would report).
step ".tar.gz and .deb"
TARBALL=dist/tlstudio-$VERSION-linux-$MACHINE.tar.gz
GZIP_CMD="gzip -1"; command -v pigz >/dev/null && GZIP_CMD="pigz -1"
rm -f "$TARBALL"
( set -o pipefail
  tar -C dist --owner=0 --group=0 -cf - tlstudio | $GZIP_CMD > "$TARBALL.part"
  mv "$TARBALL.part" "$TARBALL" ) &
TAR_JOB=$!
# a failed .deb step stops it too: the subshell's tar and gzip, then the subshell
trap 'pkill -P "$TAR_JOB" 2>/dev/null || true; kill "$TAR_JOB" 2>/dev/null || true' EXIT
DEB=dist/tlstudio_${VERSION}_$DEBARCH.deb
dpkg-deb --root-owner-group -Zgzip -z1 --build "$STAGE" "$DEB" >/dev/null
wait "$TAR_JOB" || { rm -f "$TARBALL.part"; echo "build: the .tar.gz failed"; exit 1; }

step "sizes"
du -sh dist/tlstudio "$TARBALL" "$DEB"
