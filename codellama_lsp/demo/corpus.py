"""The demo model's training text: permissively licensed Python on this machine, split once.

Sources are the interpreter's standard library (PSF) and installed distributions whose licence
metadata names only MIT, BSD, Apache or PSF terms. Every file has a fixed split by a hash of
its name (``stdlib/json/decoder.py``, ``pygls/server.py``), so the held-out files are the same
on every machine and training never reads them; the quality benchmark draws its positions
from them.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import re
import sysconfig
from dataclasses import dataclass
from pathlib import Path

HELD_OUT_EVERY = 20  # one file in 20 is held out
MAX_FILE_BYTES = 400_000
MIN_FILE_BYTES = 500
MAX_PACKAGE_BYTES = 2_000_000  # so that transformers or sympy do not drown the rest
EXCLUDED_PACKAGES = {"codellama-lsp"}  # our own code: what the tests complete
_SKIP_DIRS = {"test", "tests", "testing", "idlelib", "lib2to3", "turtledemo", "_vendor"}
_SKIP_DIRS |= {"site-packages", "dist-packages", "__pycache__", "benchmarks", "examples"}
_PERMISSIVE = re.compile(r"^(MIT|0BSD|BSD(-[0-9]-Clause)?|Apache(-2\.0)?|PSF(-2\.0)?)$")


@dataclass(frozen=True)
class SourceFile:
    name: str  # "stdlib/json/decoder.py" or "<distribution>/<path>": stable across machines
    path: Path
    licence: str


def licence_terms(text: str) -> list[list[str]]:
    """A licence string as alternatives (``OR``) of terms that all apply (``AND``)."""
    text = re.sub(r"\s+License$|\s+Licence$", "", text.strip(), flags=re.I)
    text = text.replace("Apache 2.0", "Apache-2.0").replace("Apache Software", "Apache-2.0")
    text = text.replace("Python Software Foundation", "PSF-2.0").replace("(", " ").replace(")", " ")
    return [
        [t.strip() for t in re.split(r"\s+AND\s+", alt) if t.strip()]
        for alt in re.split(r"\s+OR\s+", text)
    ]


def is_permissive(text: str) -> bool:
    """True when some alternative of the licence has only MIT / BSD / Apache / PSF terms."""
    return bool(text.strip()) and any(
        alt and all(_PERMISSIVE.match(term) for term in alt) for alt in licence_terms(text)
    )


def distribution_licence(dist: importlib.metadata.Distribution) -> str:
    """The licence a distribution declares: its SPDX expression, else the licence field's first
    line, else its licence classifiers joined by ``OR``."""
    meta = dist.metadata
    expression = str((meta.get_all("License-Expression") or [""])[0]).strip()
    if expression:
        return expression
    field = str((meta.get_all("License") or [""])[0]).strip().split("\n")[0]
    if field and len(field) < 60:
        return field
    classifiers = [c.split("::")[-1].strip() for c in meta.get_all("Classifier") or []]
    found = [c for c in classifiers if "License" in c or "Licence" in c]
    return " OR ".join(found)


def _wanted(parts: tuple[str, ...], size: int) -> bool:
    return (
        MIN_FILE_BYTES <= size <= MAX_FILE_BYTES
        and not any(p in _SKIP_DIRS or p.startswith("test") for p in parts)
        and not parts[-1].endswith("_pb2.py")
    )


def stdlib_sources() -> list[SourceFile]:
    """The standard library's own modules, tests and demos left out."""
    root = Path(sysconfig.get_paths()["stdlib"])
    out = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parts
        if _wanted(parts, path.stat().st_size):
            out.append(SourceFile("stdlib/" + "/".join(parts), path, "PSF-2.0"))
    return out


def package_sources() -> list[SourceFile]:
    """Installed distributions with a permissive licence, each capped at MAX_PACKAGE_BYTES."""
    seen: set[str] = set()
    out: list[SourceFile] = []
    dists = sorted(importlib.metadata.distributions(), key=lambda d: d.metadata["Name"].lower())
    for dist in dists:
        name = dist.metadata["Name"].lower()
        licence = distribution_licence(dist)
        if name in seen or name in EXCLUDED_PACKAGES or not is_permissive(licence):
            continue
        seen.add(name)
        total = 0
        for rel in sorted(str(f) for f in dist.files or [] if str(f).endswith(".py")):
            path = Path(str(dist.locate_file(rel)))
            if not path.is_file() or ".." in Path(rel).parts:
                continue
            size = path.stat().st_size
            if not _wanted(Path(rel).parts, size) or total + size > MAX_PACKAGE_BYTES:
                continue
            total += size
            out.append(SourceFile(f"{name}/{rel}", path, licence))
    return out


def is_held_out(name: str) -> bool:
    """The fixed split: a file is held out when its name's hash says so."""
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:4], "big") % HELD_OUT_EVERY == 0


def corpus(split: str) -> list[SourceFile]:
    """``train`` or ``held-out`` files of the whole corpus."""
    if split not in ("train", "held-out"):
        raise ValueError(f"split must be 'train' or 'held-out', not {split!r}")
    want_held_out = split == "held-out"
    return [f for f in stdlib_sources() + package_sources() if is_held_out(f.name) == want_held_out]


def read_texts(files: list[SourceFile]) -> list[str]:
    """The files' text, skipping any that are not UTF-8."""
    texts = []
    for f in files:
        try:
            texts.append(f.path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, OSError):
            continue
    return texts


def licence_table(files: list[SourceFile]) -> list[tuple[str, str, int, int]]:
    """(source, licence, files, bytes) per distribution, for the model's README."""
    rows: dict[str, tuple[str, int, int]] = {}
    for f in files:
        source = f.name.split("/", 1)[0]
        _, count, size = rows.get(source, (f.licence, 0, 0))
        rows[source] = (f.licence, count + 1, size + f.path.stat().st_size)
    return [(s, lic, n, b) for s, (lic, n, b) in sorted(rows.items())]
