"""An index of the definitions in the workspace's Python files, for prompt context.

Each file is read into its outline (:mod:`codellama_lsp.context.python_outline`: top-level
definitions and imports, with ``ast``), kept by path, by defined name and by module name.

What is skipped: paths ``.gitignore`` ignores (every ``.gitignore`` from the root down,
with git's rules via ``pathspec``), virtualenvs (a folder with ``pyvenv.cfg``), VCS, cache
and build output folders, files over ``MAX_FILE_BYTES`` or holding NUL bytes. Memory is
bounded: at most ``max_files`` files, ``FILE_TEXT_LIMIT`` characters of definitions per
file, and each definition cut to a few lines.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pathspec

from codellama_lsp.context.python_outline import ModuleInfo, Symbol, package_prefix, parse_file
from codellama_lsp.cursor import lsp_lines

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 512 * 1024
SKIP_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        "__pycache__",
        "node_modules",
        ".venv",
        "venv",
        ".tox",
        ".nox",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".eggs",
        "site-packages",
    }
)
BUILD_DIRS = frozenset({"build", "dist"})
"""Skipped unless they are packages (hold ``__init__.py``)."""


@dataclass
class BuildReport:
    files: int = 0
    symbols: int = 0
    skipped: int = 0
    truncated: bool = False
    seconds: float = 0.0


def read_source(path: Path) -> str | None:
    """The file's text, or None when it is too big, binary or unreadable."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return None
        data = path.read_bytes()
    except OSError:
        return None
    if b"\0" in data[:8192]:
        return None
    return data.decode("utf-8", errors="replace")


@dataclass
class _Ignores:
    """``.gitignore`` files from a root down, read once per build."""

    root: Path
    specs: dict[Path, pathspec.GitIgnoreSpec | None] = field(default_factory=dict)

    def _spec(self, folder: Path) -> pathspec.GitIgnoreSpec | None:
        if folder not in self.specs:
            spec = None
            ignore = folder / ".gitignore"
            if ignore.is_file():
                try:
                    spec = pathspec.GitIgnoreSpec.from_lines(
                        lsp_lines(ignore.read_text(errors="replace"))
                    )
                except (OSError, ValueError):
                    spec = None
            self.specs[folder] = spec
        return self.specs[folder]

    def ignored(self, path: Path, is_dir: bool) -> bool:
        """Ignored by the ``.gitignore`` of a folder above it (up to the root)."""
        folder = path.parent
        while True:
            spec = self._spec(folder)
            if spec is not None:
                relative = path.relative_to(folder).as_posix() + ("/" if is_dir else "")
                if spec.match_file(relative):
                    return True
            if folder == self.root or folder.parent == folder:
                return False
            folder = folder.parent


def skip_folder(folder: Path) -> bool:
    name = folder.name
    if name in SKIP_DIRS or name.endswith(".egg-info"):
        return True
    if name in BUILD_DIRS and not (folder / "__init__.py").exists():
        return True
    return (folder / "pyvenv.cfg").exists() or (folder / "conda-meta").is_dir()


class WorkspaceIndex:
    """The definitions of the workspace's Python files; safe to read from any thread."""

    def __init__(self, max_files: int = 10_000) -> None:
        self.max_files = max_files
        self.roots: tuple[Path, ...] = ()
        self.generation = 0
        """Bumped on every change: part of the completion cache key."""
        self.ready = False
        self._lock = threading.Lock()
        self._files: dict[str, ModuleInfo] = {}
        self._by_name: dict[str, set[str]] = {}
        self._by_last: dict[str, set[str]] = {}
        self._ignores: dict[Path, _Ignores] = {}
        self._prefixes: dict[Path, str] = {}
        self.excluded: Callable[[Path], bool] = lambda path: False
        """Files the user keeps out of prompts (``exclude_files``): never indexed."""

    def __len__(self) -> int:
        return len(self._files)

    def paths(self) -> list[str]:
        with self._lock:
            return sorted(self._files)

    # --- building -------------------------------------------------------------------
    def discover(self, roots: Iterable[Path]) -> list[tuple[Path, Path]]:
        """(root, file) for every Python file to index, in a stable order, at most
        ``max_files``."""
        found: list[tuple[Path, Path]] = []
        for root in roots:
            ignores = self._ignores.setdefault(root, _Ignores(root))
            for folder, dirs, files in os.walk(root):
                here = Path(folder)
                dirs[:] = sorted(
                    d
                    for d in dirs
                    if not skip_folder(here / d) and not ignores.ignored(here / d, True)
                )
                for name in sorted(files):
                    if not name.endswith((".py", ".pyi")):
                        continue
                    path = here / name
                    if ignores.ignored(path, False) or self.excluded(path):
                        continue
                    found.append((root, path))
                    if len(found) >= self.max_files:
                        return found
        return found

    def build(
        self,
        roots: Iterable[Path],
        report: Callable[[int, int], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> BuildReport:
        """Index every file under ``roots`` (replacing what was there)."""
        started = time.perf_counter()
        roots = tuple(Path(r).resolve() for r in roots)
        with self._lock:
            self.roots = roots
            self._ignores = {}
            self._files.clear()
            self._by_name.clear()
            self._by_last.clear()
            self.ready = False
            self.generation += 1
        result = BuildReport()
        paths = self.discover(roots)
        result.truncated = len(paths) >= self.max_files
        for number, (root, path) in enumerate(paths, 1):
            if cancel is not None and cancel.is_set():
                break
            info = self._parse(root, path)
            if info is None:
                result.skipped += 1
            else:
                self._put(info)
                result.files += 1
                result.symbols += len(info.symbols)
            if report is not None and (number % 50 == 0 or number == len(paths)):
                report(number, len(paths))
        with self._lock:
            self.ready = True
            self.generation += 1
        result.seconds = time.perf_counter() - started
        return result

    def _parse(self, root: Path, path: Path) -> ModuleInfo | None:
        source = read_source(path)
        if source is None:
            return None
        relative = path.relative_to(root).as_posix()
        return parse_file(source, relative, str(path), self.prefix(root))

    def prefix(self, root: Path) -> str:
        if root not in self._prefixes:
            self._prefixes[root] = package_prefix(root)
        return self._prefixes[root]

    def _put(self, info: ModuleInfo) -> None:
        with self._lock:
            if self._files.get(info.path) == info:
                # Saved with the same outline (a save while typing in a body): the context is
                # the same, and so are the cache keys (a suggestion still growing keeps its own).
                return
            self._drop(info.path)
            self._files[info.path] = info
            for name in info.symbols:
                self._by_name.setdefault(name, set()).add(info.path)
            self._by_last.setdefault(info.module.rsplit(".", 1)[-1], set()).add(info.path)
            self.generation += 1

    def _drop(self, path: str) -> None:
        old = self._files.pop(path, None)
        if old is None:
            return
        for name in old.symbols:
            paths = self._by_name.get(name)
            if paths is not None:
                paths.discard(path)
                if not paths:
                    del self._by_name[name]
        last = self._by_last.get(old.module.rsplit(".", 1)[-1])
        if last is not None:
            last.discard(path)
        self.generation += 1

    def root_of(self, path: Path) -> Path | None:
        for root in self.roots:
            if path == root or root in path.parents:
                return root
        return None

    def update(self, path: Path) -> bool:
        """Re-read one file (saved, created, changed or deleted on disk); True if indexed."""
        path = Path(path).resolve()
        root = self.root_of(path)
        if root is None or not path.name.endswith((".py", ".pyi")):
            return False
        ignores = self._ignores.setdefault(root, _Ignores(root))
        skipped = any(skip_folder(p) for p in path.parents if root in p.parents)
        info = None
        room = str(path) in self._files or len(self._files) < self.max_files
        if (
            room
            and path.is_file()
            and not skipped
            and not ignores.ignored(path, False)
            and not (self.excluded(path))
        ):
            info = self._parse(root, path)
        if info is None:
            with self._lock:
                self._drop(str(path))
            return False
        self._put(info)
        return True

    # --- reading --------------------------------------------------------------------
    def file(self, path: str) -> ModuleInfo | None:
        with self._lock:
            return self._files.get(path)

    def module(self, dotted: str, near: str = "") -> ModuleInfo | None:
        """The indexed module named ``dotted`` (or ending with it: ``src`` layouts, nested
        roots); the one sharing the longest path with ``near`` when several match."""
        if not dotted:
            return None
        with self._lock:
            paths = self._by_last.get(dotted.rsplit(".", 1)[-1], set())
            matches = [
                self._files[p]
                for p in paths
                if self._files[p].module == dotted or self._files[p].module.endswith("." + dotted)
            ]
        if len(matches) <= 1:
            return matches[0] if matches else None
        return max(matches, key=lambda m: (_shared(m.path, near), -len(m.path), m.path))

    def resolve(
        self, dotted: str, name: str, near: str = "", depth: int = 0
    ) -> tuple[ModuleInfo, Symbol] | None:
        """The definition of ``name`` as ``from dotted import name`` sees it, following
        re-exports (``from .impl import name`` in a package's ``__init__``)."""
        info = self.module(dotted, near)
        if info is None or depth > 4:
            return None
        symbol = info.symbols.get(name)
        if symbol is not None:
            return info, symbol
        target = info.imports.get(name)
        if target is not None and target[1] is not None:
            return self.resolve(target[0], target[1], info.path, depth + 1)
        return None

    def by_name(self, name: str, near: str = "") -> tuple[ModuleInfo, Symbol] | None:
        """A top-level definition called ``name`` anywhere, the nearest to ``near`` first."""
        with self._lock:
            infos = [self._files[p] for p in self._by_name.get(name, ())]
        if not infos:
            return None
        best = infos[0]
        if len(infos) > 1:
            best = max(infos, key=lambda m: (_shared(m.path, near), -len(m.path), m.path))
        return best, best.symbols[name]


def _shared(a: str, b: str) -> int:
    return len(os.path.commonpath([a, b])) if a and b and a[0] == b[0] else 0
