"""What ``pip install`` and the wheel carry: every folder of the source is a listed package and
every data file is covered by ``package-data`` (else setuptools warns "Package would be
ignored" and the file is missing from a wheel install)."""

from __future__ import annotations

import fnmatch
import subprocess
import tomllib

from tests.conftest import ROOT

SETUPTOOLS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def source_files() -> dict[str, list[str]]:
    """The tracked files under carebot/ and adapters/, by the package their folder becomes."""
    tracked = subprocess.run(
        ["git", "ls-files", "carebot", "adapters"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    mapped = {folder: package for package, folder in SETUPTOOLS["package-dir"].items()}
    packages: dict[str, list[str]] = {}
    for name in tracked:
        folder, _, file = name.rpartition("/")
        top, _, rest = folder.partition("/")
        package = ".".join(filter(None, [mapped.get(top, top), *rest.split("/")]))
        packages.setdefault(package, []).append(file)
    return packages


def test_every_source_folder_is_a_listed_package() -> None:
    assert sorted(source_files()) == sorted(SETUPTOOLS["packages"])


def test_every_data_file_is_declared_as_package_data() -> None:
    declared = SETUPTOOLS["package-data"]
    missing = [
        f"{package}: {file}"
        for package, files in source_files().items()
        for file in files
        if not file.endswith(".py")
        and not any(fnmatch.fnmatch(file, pattern) for pattern in declared.get(package, []))
    ]
    assert missing == []
