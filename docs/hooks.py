"""MkDocs hook: the measured plots under benchmarks/results/ become part of the site, so pages show (and `mkdocs build
--strict` checks) them where the studies wrote them, without a second copy in docs/."""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File

RESULTS = Path(__file__).resolve().parent.parent / "benchmarks"


def on_files(files, config):
    for png in sorted((RESULTS / "results").rglob("*.png")):
        files.append(File(str(png.relative_to(RESULTS)), str(RESULTS), config["site_dir"], config["use_directory_urls"]))
    return files
