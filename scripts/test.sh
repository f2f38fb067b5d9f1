#!/usr/bin/env bash
# The test command: install everything (dev extras), then lint, type-check and run the whole test suite.
# Extra arguments go to pytest (e.g. -m "not slow" for the fast part).
source "$(dirname "$0")/_env.sh" dev
# The catalog tests start a PostgreSQL server and use its JDBC driver (Debian packages): installed when missing.
if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || [ ! -f /usr/share/java/postgresql.jar ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing PostgreSQL and its JDBC driver for the catalog tests (apt-get)" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql \
      libpostgresql-jdbc-java >/dev/null
  else
    echo "warning: the catalog tests need PostgreSQL and its JDBC driver: sudo apt-get install postgresql" \
      "libpostgresql-jdbc-java" >&2
  fi
fi
ruff check .
mypy
python -m pytest "$@"
