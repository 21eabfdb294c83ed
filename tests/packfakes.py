"""Stand-ins for `apt-get` and `npm` so the real apt/npm fetch code runs offline on fixtures."""

from __future__ import annotations

import io
import os
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path

FAKE_APT = """#!/bin/sh
# download PKG...: copy $FAKE_DEBS/PKG_*.deb here; fails until `update` ran when $FAKE_NEEDS_UPDATE is set
if [ "$1" = update ]; then touch "$FAKE_DEBS/updated"; exit 0; fi
if [ "$1" = download ]; then
  shift
  if [ -n "$FAKE_NEEDS_UPDATE" ] && [ ! -f "$FAKE_DEBS/updated" ]; then
    echo "E: Unable to locate package $1" >&2; exit 100
  fi
  for p in "$@"; do cp "$FAKE_DEBS/${p}"_*.deb . || exit 100; done
  exit 0
fi
exit 1
"""

FAKE_NPM = """#!/bin/sh
# pack SPEC: copy $FAKE_TGZ here and print its name
cp "$FAKE_TGZ" . && basename "$FAKE_TGZ"
"""


def install_fake_tool(bin_dir: Path, name: str, script: str) -> None:
    """Write an executable script called ``name`` into ``bin_dir``."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    path = bin_dir / name
    path.write_text(script, encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def build_deb(tree: dict[str, str], package: str, out_dir: Path) -> Path:
    """Build a real ``.deb`` holding ``tree`` (relative path -> text) with ``dpkg-deb --build``."""
    root = out_dir / f"{package}-root"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {package}\nVersion: 1:7.4-test\nArchitecture: all\nMaintainer: t <t@example.org>\n"
        "Description: fixture\n", encoding="utf-8")
    for relative, text in tree.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    deb = out_dir / f"{package}_7.4-test_all.deb"
    subprocess.run(["dpkg-deb", "-Zgzip", "--root-owner-group", "--build", str(root), str(deb)], check=True,
                   capture_output=True)
    shutil.rmtree(root)
    return deb


def build_npm_tarball(files: dict[str, str], path: Path) -> Path:
    """Write an npm-style ``.tgz`` whose members live under ``package/``."""
    with tarfile.open(path, "w:gz") as archive:
        for relative, text in files.items():
            data = text.encode("utf-8")
            info = tarfile.TarInfo(f"package/{relative}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def prepend_path(monkeypatch, bin_dir: Path) -> None:
    """Put ``bin_dir`` first on PATH for the test."""
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
