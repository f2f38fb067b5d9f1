"""The house's rules that a linter keeps: the core imports nothing but itself, config and errors."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUFF = str(Path(sys.executable).parent / "ruff")
STORAGE_IMPORT = "from summary_pipeline.store.tables import merge\n\n__all__ = [\"merge\"]\n"


def _ruff(path: Path, text: str) -> subprocess.CompletedProcess[str]:
    """Ruff on ``text`` as if it were the file ``path`` (so the settings that apply there apply)."""
    return subprocess.run([RUFF, "check", "--no-cache", "--stdin-filename", str(path), "-"], input=text,
                          capture_output=True, text=True, cwd=ROOT, check=False)


def test_a_core_module_that_imports_storage_fails_the_lint() -> None:
    found = _ruff(ROOT / "src" / "summary_pipeline" / "core" / "probe.py", STORAGE_IMPORT)
    assert found.returncode == 1, found.stdout + found.stderr
    assert "TID251 `summary_pipeline.store` is banned: the core does no I/O" in found.stdout


def test_the_same_import_outside_the_core_passes() -> None:
    found = _ruff(ROOT / "src" / "summary_pipeline" / "probe.py", STORAGE_IMPORT)
    assert found.returncode == 0, found.stdout + found.stderr


def test_the_readme_layout_lists_every_module_where_it_is() -> None:
    """The README's Layout block names each module of the package under its folder, and nothing else."""
    text = (ROOT / "README.md").read_text()
    block = text[text.index("```text\nsrc/summary_pipeline/"):]
    block = block[:block.index("```", 8)]
    listed: set[str] = set()
    folder = ""
    for line in block.splitlines()[1:]:
        columns = re.split(r"\s{2,}", line.strip())
        if line.startswith("src/summary_pipeline/"):
            folder, columns = "", columns[1:]
        elif line.startswith("  ") and columns[0].endswith("/"):
            folder, columns = columns[0], columns[1:]
        elif not line.startswith(" "):
            break  # the next top-level folder
        listed |= {folder + name for name in columns[0].split()}
    package = ROOT / "src" / "summary_pipeline"
    actual = {str(p.relative_to(package).with_suffix("")) for p in package.rglob("*.py")
              if p.name not in ("__init__.py", "__main__.py")}
    assert listed == actual
