"""The three proof queries over a syncscope Parquet dataset (docs/parquet.md),
run by DuckDB (a laptop) or PySpark in local mode (a cluster's engine).

    python queries.py duckdb DIR    |    python queries.py spark DIR

Prints one JSON object: per input file, frames per cmd, the latency of each
request cmd (count and nearest-rank p99, as `analyze` computes it) and
SyncKey observations per session. tests/it/lake.rs compares it with
`syncscope analyze --format json` on the same captures.
"""
import json
import sys

FRAMES_PER_CMD = """
SELECT file, cmd, count(*) AS n FROM frames
WHERE layer IN ('longlink', 'mars') GROUP BY file, cmd
"""
# Latency belongs to the request cmd (a response is cmd + 10^9).
P99_DUCKDB = """
SELECT file, cmd % 1000000000 AS cmd, count(*) AS n,
       list_sort(list(latency_us))[greatest(1, ceil(0.99 * count(*)))::INTEGER] AS p99
FROM frames WHERE layer IN ('longlink', 'mars') AND latency_us IS NOT NULL
GROUP BY file, cmd % 1000000000
"""
P99_SPARK = """
SELECT file, cmd % 1000000000 AS cmd, count(*) AS n,
       element_at(sort_array(collect_list(latency_us)),
                  CAST(greatest(1, ceil(0.99 * count(*))) AS INT)) AS p99
FROM frames WHERE layer IN ('longlink', 'mars') AND latency_us IS NOT NULL
GROUP BY file, cmd % 1000000000
"""
SYNCKEYS_PER_SESSION = """
SELECT file, session, count(*) AS n FROM synckeys GROUP BY file, session
"""


def collect(rows_frames, rows_p99, rows_keys):
    out = {}
    for file, cmd, n in rows_frames:
        out.setdefault(file, {"frames": {}, "p99": {}, "synckeys": {}})["frames"][str(cmd)] = n
    for file, cmd, n, p99 in rows_p99:
        out.setdefault(file, {"frames": {}, "p99": {}, "synckeys": {}})["p99"][str(cmd)] = [n, p99]
    for file, session, n in rows_keys:
        out.setdefault(file, {"frames": {}, "p99": {}, "synckeys": {}})["synckeys"][session] = n
    return out


def duckdb_queries(d):
    import duckdb

    con = duckdb.connect()
    for t in ("frames", "synckeys"):
        con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{d}/{t}/*.parquet')")
    return collect(
        con.execute(FRAMES_PER_CMD).fetchall(),
        con.execute(P99_DUCKDB).fetchall(),
        con.execute(SYNCKEYS_PER_SESSION).fetchall(),
    )


def spark_queries(d):
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master("local[2]")
        .appName("syncscope-proof")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    for t in ("frames", "synckeys"):
        spark.read.parquet(f"{d}/{t}").createOrReplaceTempView(t)
    rows = lambda q: [tuple(r) for r in spark.sql(q).collect()]
    out = collect(rows(FRAMES_PER_CMD), rows(P99_SPARK), rows(SYNCKEYS_PER_SESSION))
    spark.stop()
    return out


if __name__ == "__main__":
    engine, d = sys.argv[1], sys.argv[2]
    res = duckdb_queries(d) if engine == "duckdb" else spark_queries(d)
    print(json.dumps(res, sort_keys=True))
