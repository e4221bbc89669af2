#!/usr/bin/env bash
# Build tlstudio.app and a .dmg on macOS, signed with the hardened runtime and notarized.
# Verified only on macOS (Apple silicon, Python 3.11, Xcode command line tools).
#
#   TLSTUDIO_CODESIGN_IDENTITY="Developer ID Application: NAME (TEAMID)"   signing identity
#   TLSTUDIO_NOTARY_PROFILE=tlstudio-notary   a notarytool keychain profile, made once with
#       xcrun notarytool store-credentials tlstudio-notary --apple-id ID --team-id TEAMID
# Without an identity the app is ad-hoc signed (runs on this Mac, Gatekeeper warns elsewhere);
# without a profile notarization is skipped.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
PY=${PYTHON:-$ROOT/.venv/bin/python}
[ -x "$PY" ] || make venv   # the same .venv as `make test`; macOS wheels of torch are CPU/MPS
"$PY" -m pip install -q -e '.[package]'
VERSION=$("$PY" -c "import tlstudio; print(tlstudio.__version__)")
ARCH=$(uname -m)

"$PY" packaging/make_icons.py build/icons
# The spec passes TLSTUDIO_CODESIGN_IDENTITY and entitlements.plist to PyInstaller, which
# signs every collected binary and the bundle (hardened runtime when an identity is given).
TLSTUDIO_REQUIRE_SAMPLE=1 "$PY" -m PyInstaller --noconfirm --clean --distpath dist \
    --workpath build/pyinstaller packaging/tlstudio.spec
APP=dist/tlstudio.app

codesign --verify --deep --strict --verbose=2 "$APP"
"$PY" packaging/check_bundle.py "$APP"
"$APP/Contents/MacOS/tlstudio-cli" --smoke-test | tee build/smoke-macos.log
[ "$(tail -1 build/smoke-macos.log)" = "TLSTUDIO SMOKE TEST PASSED" ]

DMG=dist/tlstudio-$VERSION-macos-$ARCH.dmg
rm -f "$DMG"
hdiutil create -volname tlstudio -srcfolder "$APP" -ov -format UDZO "$DMG"
if [ -n "${TLSTUDIO_CODESIGN_IDENTITY:-}" ]; then
    codesign --force --timestamp --sign "$TLSTUDIO_CODESIGN_IDENTITY" "$DMG"
fi
if [ -n "${TLSTUDIO_NOTARY_PROFILE:-}" ]; then
    xcrun notarytool submit "$DMG" --keychain-profile "$TLSTUDIO_NOTARY_PROFILE" --wait
    xcrun stapler staple "$DMG"
    xcrun stapler staple "$APP"
    spctl --assess --type open --context context:primary-signature --verbose "$DMG"
fi
du -sh "$APP" "$DMG"
