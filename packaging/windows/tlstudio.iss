; Inno Setup 6 script: tlstudio-VERSION-windows-x64-setup.exe (+ .bin slices) from dist\tlstudio.
; Built by packaging\windows\build.ps1, which passes /DAppVersion=... ; verified only on Windows.
; A CUDA build of torch makes the folder 4-5 GB: more than one setup file may hold, hence
; disk spanning (setup.exe plus tlstudio-...-1.bin, -2.bin ...; ship them side by side).

#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif
#define Root "..\.."

[Setup]
AppId={{7C1F3A52-4E0B-4B8E-9E33-3D2B8E6A1F90}
AppName=tlstudio
AppVersion={#AppVersion}
AppVerName=tlstudio {#AppVersion}
AppPublisher=tlstudio developers
DefaultDirName={autopf}\tlstudio
DefaultGroupName=tlstudio
DisableProgramGroupPage=yes
; per-user install without admin rights is offered; IT can force all-users with /ALLUSERS
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=commandline dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
OutputDir={#Root}\dist
OutputBaseFilename=tlstudio-{#AppVersion}-windows-x64-setup
SetupIconFile={#Root}\build\icons\tlstudio.ico
UninstallDisplayIcon={app}\tlstudio.exe
WizardStyle=modern
; Torch DLLs compress poorly and slowly: fast LZMA2, not solid, so setup stays quick.
Compression=lzma2/fast
SolidCompression=no
DiskSpanning=yes
DiskSliceSize=max
; %ProgramFiles% paths over 260 characters (deep torch folders) are fine on Windows 10+.
UsedUserAreasWarning=no

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked

[Files]
Source: "{#Root}\dist\tlstudio\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{autoprograms}\tlstudio"; Filename: "{app}\tlstudio.exe"; Comment: "Transfer-learning studio"
Name: "{autodesktop}\tlstudio"; Filename: "{app}\tlstudio.exe"; Tasks: desktopicon

[Run]
Filename: "{app}\tlstudio.exe"; Description: "{cm:LaunchProgram,tlstudio}"; Flags: nowait postinstall skipifsilent

[UninstallDelete]
; the app's own caches live in the user's profile, not here; only Python's bytecode caches
Type: filesandordirs; Name: "{app}\_internal\__pycache__"
