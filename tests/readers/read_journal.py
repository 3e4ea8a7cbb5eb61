"""Read an hqx journal with a reader hqx did not write, for tests/views.rs.

    python read_journal.py sqlite3|duckdb JOURNAL QUERIES_JSON

QUERIES_JSON is a JSON object {name: "SELECT ..."}; prints {name: [rows]}
as JSON, each row an object of column -> value, as `hqx sql --format json`
prints them. `sqlite3` is Python's sqlite3 module (read-only URI);
`duckdb` attaches the journal with DuckDB's sqlite extension, READ_ONLY,
and runs each query with `hqx.` before the view's name ({hqx} in the text).
"""

import json
import os
import sys


def rows_of(cursor):
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, r)) for r in cursor.fetchall()]


def main():
    reader, journal, queries = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    out = {}
    if reader == "sqlite3":
        import sqlite3

        db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
        for name, q in queries.items():
            out[name] = rows_of(db.execute(q.replace("{hqx}", "")))
    elif reader == "duckdb":
        import duckdb

        config = {}
        try:
            # The sqlite extension as a PyPI package (duckdb-ext-sqlite):
            # DuckDB would otherwise download it.
            import duckdb_ext

            config = {
                "extension_directory": os.path.join(list(duckdb_ext.__path__)[0], "extensions"),
                "autoinstall_known_extensions": False,
            }
        except ImportError:
            pass
        db = duckdb.connect(config=config)
        db.execute("LOAD sqlite")
        db.execute(f"ATTACH '{journal}' AS hqx (TYPE sqlite, READ_ONLY)")
        for name, q in queries.items():
            out[name] = rows_of(db.execute(q.replace("{hqx}", "hqx.")))
    else:
        sys.exit(f"unknown reader {reader}")
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
