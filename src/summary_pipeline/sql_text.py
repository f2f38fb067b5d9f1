"""Everything that reaches SQL text, made safe there (docs/config.md, "Tables and key columns").

The pipeline writes some statements as text (``MERGE``, ``CALL``, ``ALTER TABLE``, ``UPDATE``) and hands
expressions to Spark's parser (a config ``mapper_expr``, the ``--backfill-filter``). Whatever comes from the
config, the command line or a table is one of three things there:

* a **name** (a table, a column, a catalog): checked against a whitelist where the config is read
  (:mod:`summary_pipeline.config_values`) and again where it is written into SQL (:func:`sql_table`), or quoted
  (:func:`sql_name`);
* a **value**: a string literal with every quote and backslash escaped (:func:`sql_string`), or, better, a
  DataFrame literal or a read option, which never becomes SQL text;
* an **expression**: it must be one expression and nothing more: no ``;``, no statement, no subquery, no comment
  and no call of Java methods. :func:`expression_problem` reads the text (no Spark needed, so the config and the
  command line are checked before Spark starts); :func:`one_expression_problem` adds Spark's own parser, which
  finds a subquery however it is written.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from summary_pipeline.errors import ConfigError

__all__ = [
    "JAVA_CALLS",
    "STATEMENT_WORDS",
    "expression_problem",
    "has_subquery",
    "one_expression_problem",
    "sql_in",
    "sql_name",
    "sql_string",
    "sql_table",
]

#: Words that start a statement or a query: never part of one expression (unless quoted as a name).
STATEMENT_WORDS = ("select", "insert", "update", "delete", "drop", "create", "alter", "merge", "truncate")
#: Functions that call Java methods by name: an expression has no business doing that.
JAVA_CALLS = ("reflect", "java_method", "try_reflect")
#: Why a statement word, a ``;`` or a subquery is refused, as every message says it.
_ONE = "(no statements, ';' or subqueries)"

_PART = r"[A-Za-z_][A-Za-z0-9_]*"
#: A table as SQL text names it: ``[catalog.]namespace.table``, plus Iceberg's ``.branch_<name>`` suffix.
_TABLE_TEXT = re.compile(rf"^{_PART}(\.{_PART}){{0,3}}$")
_TOKEN = re.compile(r"[A-Za-z0-9_]+")


def sql_string(value: str) -> str:
    """``value`` as a Spark SQL string literal: quotes and backslashes escaped, so the literal ends where it
    should whatever ``value`` holds.

    >>> print(sql_string("it's"), sql_string("a\\\\"))
    'it\\'s' 'a\\\\'
    """
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def sql_name(name: str) -> str:
    """One name part (a column, a catalog) as a backquoted Spark SQL identifier.

    >>> print(sql_name("balance_am"), sql_name("we`ird"))
    `balance_am` `we``ird`
    """
    return "`" + name.replace("`", "``") + "`"


def sql_in(column: str, values: Iterable[str]) -> str:
    """``column IN (values...)``: the name backquoted, each value an escaped string literal.

    >>> print(sql_in("rpt_as_of_mo", ["2026-01", "x') OR ('1'='1"]))
    `rpt_as_of_mo` IN ('2026-01', 'x\\') OR (\\'1\\'=\\'1')
    """
    return f"{sql_name(column)} IN ({', '.join(sql_string(v) for v in values)})"


def sql_table(name: str) -> str:
    """``name``, checked to be a table name made of letters, digits and underscores, as SQL text takes it.

    Config table names are checked when the config is read; this check stands where a name is written into a
    statement, whoever built it.

    >>> sql_table("local.db.summary")
    'local.db.summary'
    >>> sql_table("db.t; DROP TABLE db.x")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    summary_pipeline.errors.ConfigError: table name: 1 problem:
      - 'db.t; DROP TABLE db.x' is not a table name; ...
    """
    if not _TABLE_TEXT.match(name):
        raise ConfigError([f"{name!r} is not a table name; use [catalog.]namespace.table with letters, digits "
                           "and underscores"], "table name")
    return name


def _calls(text: str, at: int) -> bool:
    """Whether a name that ends at ``at`` is called: the next non-blank character is ``(``."""
    rest = text[at:].lstrip()
    return rest.startswith("(")


def expression_problem(text: str, words: Iterable[str] = STATEMENT_WORDS) -> str | None:
    """What makes ``text`` more than one expression, read as text (no Spark), or None.

    It reads the text as Spark's parser does: string literals (``'...'``, ``"..."``, raw ``r'...'``) and
    backquoted names are skipped, so a quoted ``;`` or ``'drop'`` is a value, not a statement. Outside them it
    refuses ``;``, the ``words`` (statements and ``SELECT``), comments (which could hide the rest), a quote
    left open and a call of Java methods (:data:`JAVA_CALLS`).

    >>> print(expression_problem("a = 1; DROP TABLE t"))
    ';' is not allowed (no statements, ';' or subqueries)
    >>> print(expression_problem("a IN (select 1)"))
    'select' is not allowed (no statements, ';' or subqueries)
    >>> expression_problem("CASE WHEN a = 'drop; it' THEN `select` END") is None
    True
    """
    banned = {w.lower() for w in words}
    i, n = 0, len(text)
    raw = False
    while i < n:
        c = text[i]
        if c in "'\"":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" and not raw else 1
            if j >= n:
                return f"a quote ({c}) is not closed"
            i, raw = j + 1, False
            continue
        raw = False
        if c == "`":
            j, name = i + 1, ""
            while True:
                k = text.find("`", j)
                if k < 0:
                    return "a backquote (`) is not closed"
                name += text[j:k]
                if not text.startswith("`", k + 1):
                    break
                name, j = name + "`", k + 2
            i = k + 1
            if name.lower() in JAVA_CALLS and _calls(text, i):
                return f"{name!r} calls Java methods and is not allowed"
            continue
        if text.startswith("--", i) or text.startswith("/*", i):
            return f"a comment ({text[i:i + 2]!r}) is not allowed"
        if c == ";":
            return f"';' is not allowed {_ONE}"
        token = _TOKEN.match(text, i)
        if token is None:
            i += 1
            continue
        word, i = token.group(0), token.end()
        if word.lower() in banned:
            return f"{word!r} is not allowed {_ONE}"
        if word.lower() in JAVA_CALLS and _calls(text, i):
            return f"{word!r} calls Java methods and is not allowed"
        raw = word.lower() == "r" and i < n and text[i] in "'\""
    return None


def has_subquery(spark: Any, text: str) -> bool:
    """Whether Spark's parser reads a subquery in ``text`` (``(SELECT ...)``, ``EXISTS (TABLE t)``,
    ``IN (FROM t ...)``: any of them). Parses only: nothing is resolved or run.

    Raises:
        pyspark.errors.ParseException: ``text`` is not one expression.
    """
    parsed = spark._jsparkSession.sessionState().sqlParser().parseExpression(text)
    pattern = spark._jvm.org.apache.spark.sql.catalyst.trees.TreePattern.PLAN_EXPRESSION()
    return bool(parsed.containsPattern(pattern))


def one_expression_problem(spark: Any, text: str, words: Iterable[str] = STATEMENT_WORDS) -> str | None:
    """:func:`expression_problem`, then Spark's parser for a subquery; None when ``text`` is one expression.

    Raises:
        pyspark.errors.ParseException: ``text`` does not parse.
    """
    problem = expression_problem(text, words)
    if problem is None and has_subquery(spark, text):
        problem = f"a subquery is not allowed {_ONE}"
    return problem
