; imgdedupe Windows installer (NSIS 3).
;
; Build (from the repository root, after `pyinstaller packaging/imgdedupe.spec`):
;   makensis /NOCD /DVERSION=0.1.0 /DBUNDLE=dist\imgdedupe packaging\windows\imgdedupe.nsi
; On Linux/macOS write the options with "-" instead of "/" (-NOCD -DVERSION=...).
; Without /NOCD makensis resolves relative paths from packaging\windows.
;
; Defines: VERSION (x.y.z, required), BUNDLE (the PyInstaller one-folder
; bundle, required), OUTFILE (default imgdedupe-VERSION-setup.exe), ICON
; (default resources\icons\imgdedupe.ico when present).
;
; Per-user install: no administrator rights, everything under HKCU and
; %LOCALAPPDATA%. Every registry key written in Section "Install" is deleted
; in Section "Uninstall" (tests/packaging/test_windows_installer.py checks it).

Unicode true
ManifestDPIAware true
RequestExecutionLevel user
; The bundle is mostly torch and Qt DLLs: solid LZMA shrinks it the most.
SetCompressor /SOLID lzma

!ifndef VERSION
  !error "Pass the version: makensis /DVERSION=x.y.z ..."
!endif
!ifndef BUNDLE
  !error "Pass the PyInstaller bundle folder: makensis /DBUNDLE=dist\imgdedupe ..."
!endif
!if ! /FileExists "${BUNDLE}\imgdedupe-gui.exe"
  !error "${BUNDLE}\imgdedupe-gui.exe not found (relative paths start in packaging\windows unless makensis /NOCD)"
!endif
!ifndef OUTFILE
  !define OUTFILE "imgdedupe-${VERSION}-setup.exe"
!endif

!define APP "imgdedupe"
!define EXE "imgdedupe-gui.exe"
!define CLI_EXE "imgdedupe.exe"
!define UNINST_KEY "Software\Microsoft\Windows\CurrentVersion\Uninstall\imgdedupe"
!define CLASSES "Software\Classes"

!include "MUI2.nsh"
!include "FileFunc.nsh"

Name "${APP} ${VERSION}"
OutFile "${OUTFILE}"
; Fixed folder, no directory page: the uninstaller removes this folder whole,
; so it must never be a folder the user also keeps other files in.
InstallDir "$LOCALAPPDATA\Programs\${APP}"

; The app icon, when resources/icons has it (else NSIS's own); /DICON=file.ico overrides.
!ifndef ICON
  !define ICON "${__FILEDIR__}\..\..\resources\icons\imgdedupe.ico"
!endif
!if /FileExists "${ICON}"
  !define MUI_ICON "${ICON}"
  !define MUI_UNICON "${ICON}"
!endif

!define MUI_FINISHPAGE_RUN "$INSTDIR\${EXE}"
!insertmacro MUI_PAGE_INSTFILES
!insertmacro MUI_PAGE_FINISH
!insertmacro MUI_UNPAGE_CONFIRM
!insertmacro MUI_UNPAGE_INSTFILES
!insertmacro MUI_LANGUAGE "English"

; File properties of the setup exe. VIProductVersion and VIFileVersion want
; four numbers: a pre-release tag (0.2.0rc1, 0.2.0b2, 0.2.0.dev3) keeps its
; x.y.z; the text fields below keep the whole version.
!searchparse /noerrors "${VERSION}" "" VER_MAJOR "." VER_MINOR "." VER_PATCH
!macro _VerCut marker
  !searchparse /noerrors "${VER_PATCH}" "" _VER_CUT "${marker}"
  !ifdef _VER_CUT
    !define /redef VER_PATCH "${_VER_CUT}"
    !undef _VER_CUT
  !endif
!macroend
!insertmacro _VerCut "."
!insertmacro _VerCut "rc"
!insertmacro _VerCut "a"
!insertmacro _VerCut "b"
!insertmacro _VerCut "dev"
!insertmacro _VerCut "post"
!define VERSION_NUMERIC "${VER_MAJOR}.${VER_MINOR}.${VER_PATCH}.0"
VIProductVersion "${VERSION_NUMERIC}"
VIFileVersion "${VERSION_NUMERIC}"
VIAddVersionKey /LANG=${LANG_ENGLISH} "ProductName" "${APP}"
VIAddVersionKey /LANG=${LANG_ENGLISH} "ProductVersion" "${VERSION}"
VIAddVersionKey /LANG=${LANG_ENGLISH} "FileVersion" "${VERSION}"
VIAddVersionKey /LANG=${LANG_ENGLISH} "FileDescription" "${APP} ${VERSION} setup"
VIAddVersionKey /LANG=${LANG_ENGLISH} "LegalCopyright" "imgdedupe contributors, Apache-2.0"

Function .onInit
  SetShellVarContext current
  ; /D=... could point anywhere; refuse a non-empty folder that is not ours,
  ; since upgrading and uninstalling empty the install folder.
  IfFileExists "$INSTDIR\${EXE}" ok
  FindFirst $0 $1 "$INSTDIR\*"
  loop:
    StrCmp $1 "" done
    StrCmp $1 "." next
    StrCmp $1 ".." next
    FindClose $0
    MessageBox MB_ICONSTOP "$INSTDIR is not empty and holds no ${APP} install." /SD IDOK
    Abort
  next:
    FindNext $0 $1
    Goto loop
  done:
    FindClose $0
  ok:
FunctionEnd

Function un.onInit
  SetShellVarContext current
FunctionEnd

; Is imgdedupe running from $INSTDIR? Replacing or deleting the bundle under
; a running app fails half way (its DLLs are locked, the rest is gone) and
; leaves an install that starts neither the old version nor the new one.
; The test: open each program file of the install for writing. Windows
; keeps a running program's image mapped, and a file with a live image
; section cannot be opened for writing (ERROR_SHARING_VIOLATION), whoever
; runs it; after the process ends it opens. Renaming would not do: a running
; exe may be renamed. The app's single-instance lock would not do either:
; it names a temp file after a hash of the user and the cache database,
; misses a second window on another --db and every `imgdedupe` command
; line run, and stays behind after a crash. The frozen app runs Python
; inside imgdedupe-gui.exe (one folder, no child process), and its decode
; workers are that same exe, so this finds every process of this install
; and none of another one. FileOpen "a" opens without truncating or
; writing; the file is closed at once.
!macro _DEFINE_CLOSE_APP un
  Function ${un}CloseRunningApp
    retry:
      StrCpy $0 "$INSTDIR\${EXE}"
      Call ${un}_ProgramInUse
      StrCmp $1 1 running
      StrCpy $0 "$INSTDIR\${CLI_EXE}"
      Call ${un}_ProgramInUse
      StrCmp $1 1 running
      Return
    running:
      ; Silent (/S): no one to ask, so cancel; the exit code is 2.
      MessageBox MB_RETRYCANCEL|MB_ICONEXCLAMATION "${APP} is running. Close its window (and any ${APP} command running in a terminal), then press Retry." /SD IDCANCEL IDRETRY retry
      SetErrorLevel 2
      Quit
  FunctionEnd

  ; $0: a file. $1 = 1 when it exists and cannot be opened for writing.
  Function ${un}_ProgramInUse
    StrCpy $1 0
    IfFileExists "$0" 0 done
    ClearErrors
    FileOpen $2 "$0" a
    IfErrors 0 +3
      StrCpy $1 1
      Goto done
    FileClose $2
    done:
  FunctionEnd
!macroend
!insertmacro _DEFINE_CLOSE_APP ""
!insertmacro _DEFINE_CLOSE_APP "un."

Section "Install"
  ; An upgrade replaces the old bundle whole: stale DLLs from another torch
  ; or Qt build must not stay next to the new ones. .onInit made sure this
  ; folder is ours (it holds imgdedupe-gui.exe) or empty. Never while the
  ; installed app runs: the user closes it or the setup stops here, before
  ; anything is removed.
  Call CloseRunningApp
  RMDir /r "$INSTDIR"
  SetOutPath "$INSTDIR"
  File /r "${BUNDLE}\*"
  WriteUninstaller "$INSTDIR\uninstall.exe"

  CreateShortcut "$SMPROGRAMS\${APP}.lnk" "$INSTDIR\${EXE}"

  ; Add/Remove Programs ("Apps & features").
  WriteRegStr HKCU "${UNINST_KEY}" "DisplayName" "${APP}"
  WriteRegStr HKCU "${UNINST_KEY}" "DisplayVersion" "${VERSION}"
  WriteRegStr HKCU "${UNINST_KEY}" "Publisher" "imgdedupe contributors"
  WriteRegStr HKCU "${UNINST_KEY}" "DisplayIcon" "$INSTDIR\${EXE},0"
  WriteRegStr HKCU "${UNINST_KEY}" "InstallLocation" "$INSTDIR"
  WriteRegStr HKCU "${UNINST_KEY}" "UninstallString" '"$INSTDIR\uninstall.exe"'
  WriteRegStr HKCU "${UNINST_KEY}" "QuietUninstallString" '"$INSTDIR\uninstall.exe" /S'
  WriteRegDWORD HKCU "${UNINST_KEY}" "NoModify" 1
  WriteRegDWORD HKCU "${UNINST_KEY}" "NoRepair" 1
  ${GetSize} "$INSTDIR" "/S=0K" $0 $1 $2
  WriteRegDWORD HKCU "${UNINST_KEY}" "EstimatedSize" $0

  ; Right-click on any image ("image" is the perceived type of .jpg, .png,
  ; .heic, ...): so no file type's own default handler is touched.
  WriteRegStr HKCU "${CLASSES}\SystemFileAssociations\image\shell\imgdedupe.similar" "" "Find similar images"
  WriteRegStr HKCU "${CLASSES}\SystemFileAssociations\image\shell\imgdedupe.similar" "Icon" "$INSTDIR\${EXE},0"
  ; A command verb runs once per selected item, whatever this says; the
  ; default model (Document) hides the verb when more than 15 items are
  ; selected, Player allows 100. Each launch hands its image to the running
  ; window (imgdedupe/gui/single_instance.py), so 20 photos are one window.
  ; One process for the whole selection would need a COM DropTarget handler.
  WriteRegStr HKCU "${CLASSES}\SystemFileAssociations\image\shell\imgdedupe.similar" "MultiSelectModel" "Player"
  WriteRegStr HKCU "${CLASSES}\SystemFileAssociations\image\shell\imgdedupe.similar\command" "" '"$INSTDIR\${EXE}" --similar "%1"'

  ; Right-click on a folder, and on the empty background of an open folder
  ; (there %1 is empty; %V is the folder shown).
  WriteRegStr HKCU "${CLASSES}\Directory\shell\imgdedupe.scan" "" "Find duplicates in this folder"
  WriteRegStr HKCU "${CLASSES}\Directory\shell\imgdedupe.scan" "Icon" "$INSTDIR\${EXE},0"
  WriteRegStr HKCU "${CLASSES}\Directory\shell\imgdedupe.scan\command" "" '"$INSTDIR\${EXE}" --scan "%1\."'
  ; A drive (C:\, an SD card E:\) has verbs of its own. "%1\." not "%1": a
  ; quoted drive root "E:\" ends in \" and Windows reads it as E:" .
  WriteRegStr HKCU "${CLASSES}\Drive\shell\imgdedupe.scan" "" "Find duplicates in this folder"
  WriteRegStr HKCU "${CLASSES}\Drive\shell\imgdedupe.scan" "Icon" "$INSTDIR\${EXE},0"
  WriteRegStr HKCU "${CLASSES}\Drive\shell\imgdedupe.scan\command" "" '"$INSTDIR\${EXE}" --scan "%1\."'
  WriteRegStr HKCU "${CLASSES}\Directory\Background\shell\imgdedupe.scan" "" "Find duplicates in this folder"
  WriteRegStr HKCU "${CLASSES}\Directory\Background\shell\imgdedupe.scan" "Icon" "$INSTDIR\${EXE},0"
  WriteRegStr HKCU "${CLASSES}\Directory\Background\shell\imgdedupe.scan\command" "" '"$INSTDIR\${EXE}" --scan "%V\."'

  ; "Open with" for images: the Applications key names the program and the
  ; types it accepts (listed in "Choose another app"); the OpenWithList entry
  ; puts it in the Open with submenu of every image. Opening an image finds
  ; images similar to it. Extensions: imgdedupe.core.files.walk.IMAGE_EXTENSIONS.
  WriteRegStr HKCU "${CLASSES}\Applications\${EXE}" "FriendlyAppName" "${APP}"
  WriteRegStr HKCU "${CLASSES}\Applications\${EXE}\DefaultIcon" "" "$INSTDIR\${EXE},0"
  WriteRegStr HKCU "${CLASSES}\Applications\${EXE}\shell\open" "MultiSelectModel" "Player"
  WriteRegStr HKCU "${CLASSES}\Applications\${EXE}\shell\open\command" "" '"$INSTDIR\${EXE}" --similar "%1"'
  WriteRegStr HKCU "${CLASSES}\Applications\${EXE}\SupportedTypes" ".jpg" ""
  WriteRegStr HKCU "${CLASSES}\Applications\${EXE}\SupportedTypes" ".jpeg" ""
  WriteRegStr HKCU "${CLASSES}\Applications\${EXE}\SupportedTypes" ".png" ""
  WriteRegStr HKCU "${CLASSES}\Applications\${EXE}\SupportedTypes" ".webp" ""
  WriteRegStr HKCU "${CLASSES}\Applications\${EXE}\SupportedTypes" ".gif" ""
  WriteRegStr HKCU "${CLASSES}\Applications\${EXE}\SupportedTypes" ".bmp" ""
  WriteRegStr HKCU "${CLASSES}\Applications\${EXE}\SupportedTypes" ".tif" ""
  WriteRegStr HKCU "${CLASSES}\Applications\${EXE}\SupportedTypes" ".tiff" ""
  WriteRegStr HKCU "${CLASSES}\Applications\${EXE}\SupportedTypes" ".heic" ""
  WriteRegStr HKCU "${CLASSES}\Applications\${EXE}\SupportedTypes" ".heif" ""
  WriteRegStr HKCU "${CLASSES}\Applications\${EXE}\SupportedTypes" ".avif" ""
  WriteRegStr HKCU "${CLASSES}\Applications\${EXE}\SupportedTypes" ".cr2" ""
  WriteRegStr HKCU "${CLASSES}\Applications\${EXE}\SupportedTypes" ".cr3" ""
  WriteRegStr HKCU "${CLASSES}\Applications\${EXE}\SupportedTypes" ".nef" ""
  WriteRegStr HKCU "${CLASSES}\Applications\${EXE}\SupportedTypes" ".arw" ""
  WriteRegStr HKCU "${CLASSES}\Applications\${EXE}\SupportedTypes" ".dng" ""
  WriteRegStr HKCU "${CLASSES}\Applications\${EXE}\SupportedTypes" ".raf" ""
  WriteRegStr HKCU "${CLASSES}\Applications\${EXE}\SupportedTypes" ".orf" ""
  WriteRegStr HKCU "${CLASSES}\Applications\${EXE}\SupportedTypes" ".rw2" ""
  WriteRegStr HKCU "${CLASSES}\SystemFileAssociations\image\OpenWithList\${EXE}" "" ""

  ; Tell Explorer the verbs changed (SHCNE_ASSOCCHANGED) so they show at once.
  System::Call 'shell32::SHChangeNotify(i 0x08000000, i 0, p 0, p 0)'
SectionEnd

Section "Uninstall"
  ; Only the keys and files the installer made; the parents (shell,
  ; Directory, SystemFileAssociations\image ...) belong to Windows. The
  ; photos and the cache (%LOCALAPPDATA%\imgdedupe) are never touched.
  ; First make sure the app is closed: a refused uninstall keeps every key
  ; and file.
  Call un.CloseRunningApp
  DeleteRegKey HKCU "${UNINST_KEY}"
  DeleteRegKey HKCU "${CLASSES}\SystemFileAssociations\image\shell\imgdedupe.similar"
  DeleteRegKey HKCU "${CLASSES}\Directory\shell\imgdedupe.scan"
  DeleteRegKey HKCU "${CLASSES}\Directory\Background\shell\imgdedupe.scan"
  DeleteRegKey HKCU "${CLASSES}\Drive\shell\imgdedupe.scan"
  DeleteRegKey HKCU "${CLASSES}\Applications\${EXE}"
  DeleteRegKey HKCU "${CLASSES}\SystemFileAssociations\image\OpenWithList\${EXE}"

  Delete "$SMPROGRAMS\${APP}.lnk"
  ; The folder is ours (fixed name, .onInit refuses foreign ones), but check
  ; again before a recursive delete: never empty a folder we did not fill.
  IfFileExists "$INSTDIR\${EXE}" 0 +2
    RMDir /r "$INSTDIR"
  ; Covers an install whose exe is already gone: removes only an empty folder.
  Delete "$INSTDIR\uninstall.exe"
  RMDir "$INSTDIR"

  System::Call 'shell32::SHChangeNotify(i 0x08000000, i 0, p 0, p 0)'
SectionEnd
