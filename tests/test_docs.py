"""The user docs are checked against the code: every config key, command, flag, ledger column, check and metric the
code has is documented, so the docs cannot silently fall behind."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from summary_pipeline import cli
from summary_pipeline.config import PipelineConfig
from summary_pipeline.metrics import SPARK_FIGURES
from summary_pipeline.ops.validate import CHECKS
from summary_pipeline.store.ledger import COLUMNS

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DOC = (ROOT / "docs" / "config.md").read_text()
OPERATIONS = (ROOT / "docs" / "operations.md").read_text()
USER_DOCS = (ROOT / "README.md").read_text() + OPERATIONS


def _nested_keys(model: type[BaseModel]) -> set[str]:
    """Keys of the config models nested in ``model`` (``layout``'s, ``rolling_columns[]``'s, ...)."""
    keys = set()
    for info in model.model_fields.values():
        kind = info.annotation
        for candidate in (kind, *getattr(kind, "__args__", ())):
            for inner in (candidate, *getattr(candidate, "__args__", ())):
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    keys |= {i.alias or n for n, i in inner.model_fields.items()} | _nested_keys(inner)
    return keys


@pytest.mark.parametrize("key", sorted(i.alias or n for n, i in PipelineConfig.model_fields.items()))
def test_every_config_key_is_in_the_config_reference(key: str) -> None:
    assert f"`{key}`" in CONFIG_DOC


@pytest.mark.parametrize("key", sorted(_nested_keys(PipelineConfig)))
def test_every_nested_config_key_is_in_the_config_reference(key: str) -> None:
    assert re.search(rf"\b{key}\b", CONFIG_DOC), key


def test_every_command_and_flag_is_documented() -> None:
    missing = [command for command in cli.SUBCOMMANDS
               if command != "run" and f"summary-pipeline {command}" not in USER_DOCS]
    missing += [f"{command} {flag}" for command in cli.COMMANDS for action in cli.command_parser(command)._actions
                for flag in action.option_strings
                if flag.startswith("--") and flag not in ("--help", "--version") and flag not in USER_DOCS]
    assert missing == []


def test_every_ledger_column_check_and_metric_is_in_the_operations_guide() -> None:
    for name, _ in COLUMNS:
        assert f"`{name}`" in OPERATIONS or f"`{name}`," in OPERATIONS, name
    for name, _, _ in CHECKS:
        assert f"`{name}`" in OPERATIONS, name
    for name in (*SPARK_FIGURES, "invalid_dates", "null_arrays", "partitions_written", "spark_jobs", "spark_stages"):
        assert name in OPERATIONS, name


def test_the_docs_link_only_to_files_inside_the_repository() -> None:
    """The repository stands alone: every relative link of the README and docs/ names a file in it."""
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target:
                continue
            found = (page.parent / target).resolve()
            assert found.is_relative_to(ROOT) and found.exists(), f"{page.name} links to {target}"


def test_the_sections_the_code_cites_exist() -> None:
    """A citation such as ``docs/operations.md, "Tuning"`` in a module, DAG, script or page names a heading of that
    page (its start: "The commit protocol" cites "The commit protocol: why a kill ...")."""
    cited = []
    for folder in ("src", "jobs", "deploy", "scripts", "docs"):
        cited += [p for p in sorted((ROOT / folder).rglob("*")) if p.suffix in (".py", ".sh", ".md")]
    for path in [*cited, ROOT / "README.md"]:
        for page, section in re.findall(r'docs/(\w+\.md), "([^"]+)"', path.read_text()):
            headings = re.findall(r"^#+ (.+)$", (ROOT / "docs" / page).read_text(), flags=re.MULTILINE)
            assert any(h.startswith(section) for h in headings), f"{path.name} cites {page}, {section!r}"
