"""The values a config is made of: Spark type names, durations, column identifiers, table names and expressions.

Each is a plain function (or an annotated ``str`` type for pydantic) so the model in
:mod:`summary_pipeline.config` and the raw-dict checks in :mod:`summary_pipeline.config_checks` share one
definition of what is valid.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

from summary_pipeline.config_checks import IDENTIFIER
from summary_pipeline.sql_text import expression_problem

__all__ = ["Expression", "Identifier", "TableName", "seconds", "spark_type"]

_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*){0,2}$")
_DECIMAL = re.compile(r"^decimal\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)$", re.IGNORECASE)
_SIMPLE_TYPES = {
    "integer": "int",
    "int": "int",
    "long": "bigint",
    "bigint": "bigint",
    "double": "double",
    "string": "string",
    "date": "date",
    "decimal": "decimal(18,2)",
}
_DURATION = re.compile(r"^\s*(\d+)\s*(s|sec|secs|seconds?|m|min|mins|minutes?|h|hours?|d|days?)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def spark_type(type_name: str) -> str:
    """Map a config ``type`` (the seed's ``Integer``, ``String``, ...) to a Spark SQL type name.

    >>> spark_type("Integer"), spark_type("Decimal(10,2)")
    ('int', 'decimal(10,2)')
    """
    simple = _SIMPLE_TYPES.get(type_name.strip().lower())
    if simple is not None:
        return simple
    match = _DECIMAL.match(type_name.strip())
    if match and 0 < int(match.group(1)) <= 38 and int(match.group(2)) <= int(match.group(1)):
        return f"decimal({match.group(1)},{match.group(2)})"
    raise ValueError(
        f"unknown type {type_name!r}; use one of Integer, Long, Double, Decimal, Decimal(p,s), String, Date"
    )


def seconds(value: int | str) -> int:
    """Parse a duration (look-back, lock timeout): whole seconds, or ``"<n> <unit>"`` with s/m/h/d units.

    >>> seconds("6 hours"), seconds(90)
    (21600, 90)
    """
    if isinstance(value, int):
        if value < 0:
            raise ValueError("must not be negative")
        return value
    match = _DURATION.match(value)
    if not match:
        raise ValueError(f"{value!r} is not a duration; write seconds (3600) or '<n> <unit>' like '6 hours'")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)[0].lower()]


def _identifier(value: str) -> str:
    if not IDENTIFIER.match(value):
        raise ValueError(f"{value!r} is not a column identifier")
    return value


def _table_name(value: str) -> str:
    if not _TABLE.match(value):
        raise ValueError(f"{value!r} is not a table name; use [catalog.]namespace.table with letters, digits and "
                         "underscores")
    return value


def _expression(value: str) -> str:
    if not value.strip():
        raise ValueError("is empty; give one Spark SQL expression over the row's columns")
    problem = expression_problem(value)
    if problem:
        raise ValueError(f"must be one Spark SQL expression over the row's columns; {problem}")
    return value


#: A column name the config gives: letters, digits and underscores, not starting with a digit.
Identifier = Annotated[str, AfterValidator(_identifier)]
#: A table name: ``[catalog.]namespace.table``, each part an identifier.
TableName = Annotated[str, AfterValidator(_table_name)]
#: A ``mapper_expr``: one Spark SQL expression, without ``;``, statement, subquery or comment
#: (:mod:`summary_pipeline.sql_text`; Spark's parser checks it again for a subquery once a session exists).
Expression = Annotated[str, AfterValidator(_expression)]
