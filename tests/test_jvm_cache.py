"""The JVM's class archive: written once by a CLI command, used by the next, and never trusted when broken."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from factories import reference_raw
from summary_pipeline import jvm_cache

#: Stands for the java binary: the key reads its real path and modification time.
JAVA = Path(sys.executable)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    where = tmp_path / "cache"
    monkeypatch.setenv("SUMMARY_PIPELINE_CACHE", str(where))
    monkeypatch.setattr(jvm_cache, "_pending", None)
    return where


def test_without_an_archive_only_a_writer_asks_the_jvm_for_one(cache: Path) -> None:
    assert jvm_cache.java_options(JAVA, ["a"], write=False) == jvm_cache.Archive()
    asked = jvm_cache.java_options(JAVA, ["a"], write=True)
    assert asked.used is None and f"-XX:ArchiveClassesAtExit={cache}/classes-" in asked.options
    assert f".{os.getpid()}.tmp" in asked.options and "-Xlog:cds=off" in asked.options


def test_an_archive_in_place_is_used_and_other_parts_make_another(cache: Path) -> None:
    jvm_cache.java_options(JAVA, ["a"], write=True)
    assert jvm_cache._pending is not None
    archive = jvm_cache._pending[1]
    archive.write_bytes(b"classes")
    used = jvm_cache.java_options(JAVA, ["a"], write=True)
    assert used == jvm_cache.Archive(f"-XX:SharedArchiveFile={archive} -Xlog:cds=off -Xlog:cds+dynamic=off",
                                     archive)
    assert jvm_cache.java_options(JAVA, ["b"], write=False).used is None


def test_off_turns_it_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUMMARY_PIPELINE_CACHE", "off")
    assert jvm_cache.java_options(JAVA, ["a"], write=True) == jvm_cache.Archive()


def _exits_after_writing(path: Path, code: int) -> subprocess.Popen[bytes]:
    """A process that, like PySpark's JVM, ends when its stdin closes, here after writing ``path``."""
    script = f"import sys; sys.stdin.read(); open({str(path)!r}, 'w').write('x'); sys.exit({code})"
    return subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE)


@pytest.mark.parametrize("code", [0, 1])
def test_the_archive_takes_its_name_only_after_a_clean_exit(cache: Path, code: int) -> None:
    jvm_cache.java_options(JAVA, ["a"], write=True)
    assert jvm_cache._pending is not None
    written, archive = jvm_cache._pending
    said: list[str] = []
    jvm_cache.finish(_exits_after_writing(written, code), said.append)
    assert archive.exists() == (code == 0) and not written.exists()
    assert said == [f"Saving the JVM's class archive, once, so that later commands start faster: {archive}"]


def test_a_command_stopped_by_a_signal_ends_the_writer_and_keeps_nothing(cache: Path) -> None:
    jvm_cache.java_options(JAVA, ["a"], write=True)
    assert jvm_cache._pending is not None
    written, archive = jvm_cache._pending
    said: list[str] = []
    writer = _exits_after_writing(written, 0)
    jvm_cache.finish(writer, said.append, keep=False)
    assert writer.returncode is not None and not archive.exists() and not written.exists() and said == []


def test_a_dead_writers_leftover_goes_and_a_live_ones_stays(cache: Path) -> None:
    cache.mkdir()
    jvm_cache.java_options(JAVA, ["a"], write=True)
    assert jvm_cache._pending is not None
    stem = jvm_cache._pending[1].stem
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    (cache / f"{stem}.{dead}.tmp").write_text("half")
    (cache / f"{stem}.1.tmp").write_text("pid 1 is alive")
    jvm_cache.java_options(JAVA, ["a"], write=True)
    assert not (cache / f"{stem}.{dead}.tmp").exists() and (cache / f"{stem}.1.tmp").exists()


@pytest.mark.spark
@pytest.mark.slow
def test_the_cli_writes_the_archive_once_and_starts_without_a_broken_one(tmp_path: Path) -> None:
    raw = reference_raw()
    raw["warehouse"] = str(tmp_path / "warehouse")
    config = tmp_path / "config.json"
    config.write_text(json.dumps(raw))
    env = {**os.environ, "SUMMARY_PIPELINE_CACHE": str(tmp_path / "cache")}

    def runs() -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, "-m", "summary_pipeline", "runs", "--config", str(config)],
                              capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
        assert done.returncode == 0, done.stderr
        return done

    first = runs()
    assert "Saving the JVM's class archive, once" in first.stderr
    [archive] = (tmp_path / "cache").glob("classes-*.jsa")
    assert "Saving" not in runs().stderr and archive.exists()  # the second command starts from it
    archive.chmod(0o644)
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 3])  # as a full disk might leave it
    third = runs()
    assert "did not start with the class archive" in third.stderr and "(no rows)" in third.stdout
