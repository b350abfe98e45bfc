"""cluster_client.py - a real pyspark client of a provisioned cluster, run by test_clusters_spark.py.

    python cluster_client.py catalog URL TABLE   creates TABLE's namespace and TABLE (Iceberg) in
                                           the session's catalogs, inserts three rows, reads them
                                           back by the qualified name and by the name without
                                           the catalog (spark.sql.defaultCatalog)
    python cluster_client.py count URL     spark.range(10).count(), with few retries
    python cluster_client.py executors URL WANT SECONDS   a Python UDF returns os.getcwd() of
                                           the Python worker that ran each task (Spark Connect
                                           runs it in the session's folder under its executor's
                                           own files root: one directory per executor);
                                           repeated until WANT distinct directories answered or
                                           SECONDS passed (an executor that registers late)
    python cluster_client.py hold URL      one query, prints {"phase": "ready", ...}, waits for
                                           a line on stdin (the test ends the cluster
                                           meanwhile), then one more query in the same session

Prints one JSON document on stdout (hold: its second line).  Every session
uses few retries: pyspark retries UNAVAILABLE for minutes, and the cluster
tests need the gateway's answer at once.  A separate process keeps
pyspark's global session state and gRPC threads out of pytest.
"""
import json
import sys
import time

from pyspark.sql import SparkSession

from gateway_client import error_report, few_retries


def new_session(url):
    spark = SparkSession.builder.remote(url).create()
    few_retries(spark)
    return spark


def stop_quietly(spark):
    """spark.stop() releases the session on the server; on an ended cluster that fails too."""
    try:
        spark.stop()
    except Exception:   # the cluster is gone: nothing left to release
        pass


def rows_of(frame):
    return [[row["user_id"], row["clicks"]] for row in frame.orderBy("user_id").collect()]


def run_catalog(url, table):
    """table is catalog.namespace.name; the unqualified read drops the catalog."""
    catalog, namespace, name = table.split(".")
    spark = new_session(url)
    try:
        spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {catalog}.{namespace}")
        spark.sql(f"CREATE TABLE IF NOT EXISTS {table} (user_id BIGINT, clicks BIGINT) "
                  "USING iceberg")
        spark.sql(f"INSERT INTO {table} VALUES (1, 10), (2, 20), (3, 30)")
        return {
            "session_id": spark.session_id,
            "current_catalog": spark.catalog.currentCatalog(),
            "default_catalog": spark.conf.get("spark.sql.defaultCatalog"),
            "qualified": rows_of(spark.table(table)),
            "unqualified": rows_of(spark.table(f"{namespace}.{name}")),
            "provider": spark.sql(f"DESCRIBE TABLE EXTENDED {table}")
                             .filter("col_name = 'Provider'").collect()[0]["data_type"],
        }
    finally:
        stop_quietly(spark)


def run_count(url):
    spark = new_session(url)
    try:
        return {"session_id": spark.session_id, "count": spark.range(10).count()}
    finally:
        stop_quietly(spark)


def executor_work_dirs(spark):
    """The distinct working directories of the Python workers that ran 16 short tasks."""
    from pyspark.sql.functions import udf

    @udf("string")
    def work_dir(_):
        import os as executor_os
        import time as executor_time
        executor_time.sleep(0.2)    # long enough that one executor cannot take every task
        return executor_os.getcwd()

    frame = spark.range(0, 16, 1, 16).select(work_dir("id").alias("dir")).distinct()
    return sorted(row["dir"] for row in frame.collect())


def run_executors(url, want, seconds):
    spark = new_session(url)
    deadline = time.monotonic() + seconds
    attempts, dirs = 0, []
    try:
        while True:
            attempts += 1
            dirs = executor_work_dirs(spark)
            if len(dirs) >= want or time.monotonic() >= deadline:
                break
            time.sleep(1)
        return {"session_id": spark.session_id, "work_dirs": dirs, "attempts": attempts}
    finally:
        stop_quietly(spark)


def run_hold(url):
    spark = new_session(url)
    try:
        before = spark.range(5).count()
        print(json.dumps({"phase": "ready", "session_id": spark.session_id, "count": before}),
              flush=True)
        sys.stdin.readline()
        try:
            after = {"status": "OK", "count": spark.range(6).count()}
        except Exception as error:  # the gateway's refusal is the point
            after = error_report(error)
        return {"session_id": spark.session_id, "before": before, "after": after}
    finally:
        stop_quietly(spark)


MODES = {"catalog": lambda args: run_catalog(args[0], args[1]),
         "count": lambda args: run_count(args[0]),
         "executors": lambda args: run_executors(args[0], int(args[1]), float(args[2])),
         "hold": lambda args: run_hold(args[0])}


def main():
    mode, args = sys.argv[1], sys.argv[2:]
    if mode not in MODES:
        sys.exit(f"cluster_client.py: unknown mode '{mode}' (one of {', '.join(MODES)})")
    print(json.dumps(MODES[mode](args)))


if __name__ == "__main__":
    main()
