"""gateway_client.py - a real pyspark Spark Connect client, run by test_gateway.py.

    python gateway_client.py queries URL   runs range/count, a groupBy, SQL and a join
    python gateway_client.py probe URL...  one small query per URL, reports the gRPC status
                                           and the client's Spark Connect session id
    python gateway_client.py big URL       sends a ~6 MiB local relation inside one plan
                                           (more than a stream's flow-control window)
    python gateway_client.py raw PORT TOKEN CLUSTER [HEX]   one plain gRPC call with HEX as the
                                           request (default empty), no client retries
                                           (pyspark retries UNAVAILABLE for minutes)

Modes of test_gateway_spark.py (each result carries the session ids it used):

    python gateway_client.py frames URL    range/filter/groupBy/join, SQL, createDataFrame from
                                           pandas and toPandas in one session
    python gateway_client.py collect URL ROWS   toPandas of ROWS rows of 136 bytes (an id and
                                           two SHA-256 hex strings): the client's checksum of what
                                           arrived and Spark's own checksum of the same rows
    python gateway_client.py interrupt URL  a query that sleeps 90 s on the server, interrupted
                                           by interruptAll from another thread; then one more query
    python gateway_client.py two_sessions URL   two concurrent sessions of one user, each with
                                           its own temp view of the same name
    python gateway_client.py affinity URL  two sessions, one after the other, then queries of
                                           both interleaved from two threads
    python gateway_client.py failover URL  one query, prints {"phase": "ready", ...}, waits for a
                                           line on stdin (the test kills the driver meanwhile),
                                           queries the old session (few retries), then a new one
    python gateway_client.py idle URL      one query, prints {"phase": "idle", ...}, stays silent
                                           until a line on stdin (the test waits for the gateway
                                           to close the idle connection), then one more query

Prints one JSON document on stdout.  A separate process keeps pyspark's
global session state and gRPC threads out of pytest.
"""
import json
import sys
import threading
import time
import zlib

from pyspark.sql import SparkSession


def grpc_status_of(error):
    """The gRPC status name inside a pyspark Spark Connect error, or its text."""
    cause = error
    while cause is not None:
        code = getattr(cause, "code", None)
        if callable(code):
            try:
                return code().name
            except Exception:   # not a grpc.RpcError after all
                pass
        cause = cause.__cause__ or cause.__context__
    text = str(error)
    for name in ("UNAUTHENTICATED", "PERMISSION_DENIED", "NOT_FOUND", "UNAVAILABLE"):
        if name in text:
            return name
    return "UNKNOWN: " + text[:300]


def run_queries(url):
    spark = SparkSession.builder.remote(url).create()
    try:
        groups = (spark.range(1000).selectExpr("id % 3 AS k").groupBy("k").count()
                  .orderBy("k").collect())
        left = spark.range(50).withColumnRenamed("id", "k")
        right = spark.range(25, 75).withColumnRenamed("id", "k")
        return {
            "count": spark.range(100).count(),
            "filtered": spark.range(100).filter("id >= 90").count(),
            "groups": [[row["k"], row["count"]] for row in groups],
            "sql": spark.sql("SELECT 40 + 2 AS answer").collect()[0]["answer"],
            "join": left.join(right, "k").count(),
        }
    finally:
        spark.stop()


def run_big(url):
    spark = SparkSession.builder.remote(url).create()
    try:
        rows = [(i, "x" * 100) for i in range(60000)]
        frame = spark.createDataFrame(rows, "id long, pad string")
        total = frame.selectExpr("sum(id) AS total", "sum(length(pad)) AS pad").collect()[0]
        return {"total": total["total"], "pad": total["pad"], "session_id": spark.session_id}
    finally:
        spark.stop()


def probe(url):
    session_id = ""
    try:
        spark = SparkSession.builder.remote(url).create()
        session_id = spark.session_id
        try:
            spark.range(3).count()
        finally:
            spark.stop()
        return {"status": "OK", "message": "", "session_id": session_id}
    except Exception as error:  # the point is to see which error
        return {"status": grpc_status_of(error), "message": str(error)[:500],
                "session_id": session_id}


def raw_call(port, token, cluster, body_hex=""):
    import grpc
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary("/spark.connect.SparkConnectService/Config")
        try:
            call(bytes.fromhex(body_hex), timeout=30,
                 metadata=[("authorization", f"Bearer {token}"),
                           ("x-sparkplane-cluster-id", cluster)])
            return {"status": "OK", "message": ""}
        except grpc.RpcError as error:
            return {"status": error.code().name, "message": error.details() or ""}


# ---- the modes of test_gateway_spark.py ------------------------------------------------------

def grpc_details_of(error):
    """The status message the server (or gateway) sent, from the gRPC error inside error."""
    cause = error
    while cause is not None:
        details = getattr(cause, "details", None)
        if callable(details):
            try:
                return details() or ""
            except Exception:   # not a grpc.RpcError after all
                pass
        cause = cause.__cause__ or cause.__context__
    return ""


def error_report(error):
    """The gRPC status, the status message and pyspark's own text of a failed call."""
    return {"status": grpc_status_of(error), "type": type(error).__name__,
            "details": grpc_details_of(error)[:1000], "message": str(error)[:1000]}


def run_frames(url):
    import pandas
    spark = SparkSession.builder.remote(url).create()
    try:
        people = spark.createDataFrame(pandas.DataFrame(
            {"name": ["ann", "bo", "cy", "di"], "dept": [1, 2, 1, 3], "age": [31, 45, 27, 52]}))
        depts = spark.createDataFrame(pandas.DataFrame(
            {"dept": [1, 2, 3], "title": ["data", "infra", "ops"]}))
        joined = (people.join(depts, "dept").filter("age > 30").groupBy("title").count()
                  .orderBy("title").toPandas())
        evens = spark.range(1000).filter("id % 2 = 0").selectExpr("id % 5 AS k").groupBy("k").count()
        people.createOrReplaceTempView("people")
        oldest = spark.sql("SELECT name FROM people ORDER BY age DESC LIMIT 1").collect()[0][0]
        return {
            "session_id": spark.session_id,
            "joined": [[title, int(count)] for title, count in joined.values.tolist()],
            "evens": sorted([int(k), int(n)] for k, n in evens.toPandas().itertuples(index=False)),
            "oldest": oldest,
            "sql": spark.sql("SELECT sum(id) FROM range(101)").collect()[0][0],
            "round_trip": spark.createDataFrame(people.toPandas()).count(),
        }
    finally:
        spark.stop()


def wide_rows(spark, rows):
    """rows rows of an id and two 64-character hex strings (136 bytes each in Arrow), in 64
    partitions: small task results, so a 512 MiB driver never holds much of it at once."""
    return spark.range(0, rows, 1, 64).selectExpr(
        "id", "concat(sha2(cast(id AS string), 256), sha2(cast(id + 1 AS string), 256)) AS s")


def run_collect(url, rows):
    spark = SparkSession.builder.remote(url).create()
    try:
        frame = wide_rows(spark, rows)
        expected = frame.selectExpr("count(*) AS n", "sum(id) AS ids", "sum(crc32(s)) AS crcs",
                                    "sum(length(s)) AS chars").collect()[0]
        started = time.monotonic()
        local = frame.toPandas()
        seconds = time.monotonic() - started
        strings = local["s"].tolist()
        return {
            "session_id": spark.session_id, "seconds": seconds,
            "rows": len(local), "expected_rows": expected["n"],
            "ids": int(local["id"].sum()), "expected_ids": expected["ids"],
            "crcs": sum(zlib.crc32(text.encode()) for text in strings),
            "expected_crcs": expected["crcs"],
            "bytes": sum(len(text) for text in strings) + 8 * len(strings),
            "expected_chars": expected["chars"],
        }
    finally:
        spark.stop()


LONG_QUERY_MS = 90000


def run_interrupt(url):
    spark = SparkSession.builder.remote(url).create()
    outcome = {}

    def long_query():
        started = time.monotonic()
        try:   # one task that sleeps 90 s in the JVM: bounded even if no interrupt arrives
            outcome["result"] = spark.range(1).selectExpr(
                f"reflect('java.lang.Thread', 'sleep', {LONG_QUERY_MS}L) AS slept").collect()
        except Exception as error:  # the interruption is what this mode is about
            outcome["error"] = error_report(error)
        outcome["ended"] = time.monotonic()
        outcome["ran"] = outcome["ended"] - started

    try:
        spark.range(1).count()
        worker = threading.Thread(target=long_query)
        worker.start()
        interrupted, deadline = [], time.monotonic() + 120
        while worker.is_alive() and time.monotonic() < deadline:
            interrupted = spark.interruptAll()   # [] until the query is registered
            if interrupted:
                break
            time.sleep(0.2)
        interrupt_at = time.monotonic()
        worker.join(timeout=120)
        return {
            "session_id": spark.session_id, "interrupted": interrupted,
            "still_running": worker.is_alive(), "error": outcome.get("error"),
            "result": str(outcome.get("result")),
            "seconds_to_fail": outcome["ended"] - interrupt_at if "ended" in outcome else None,
            "after": spark.range(7).count(),
        }
    finally:
        spark.stop()


def run_two_sessions(url):
    first = SparkSession.builder.remote(url).create()
    second = SparkSession.builder.remote(url).create()
    try:
        first.range(10).createOrReplaceTempView("numbers")
        second.range(1000).createOrReplaceTempView("numbers")
        counts = {"first": [], "second": []}

        def count_many(name, spark):
            for _ in range(5):
                counts[name].append(spark.sql("SELECT count(*) FROM numbers").collect()[0][0])

        threads = [threading.Thread(target=count_many, args=item)
                   for item in (("first", first), ("second", second))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return {"session_ids": [first.session_id, second.session_id], "counts": counts}
    finally:
        first.stop()
        second.stop()


def run_affinity(url):
    first = SparkSession.builder.remote(url).create()
    first_sum = first.range(10).selectExpr("sum(id)").collect()[0][0]
    second = SparkSession.builder.remote(url).create()
    try:
        second_sum = second.range(20).selectExpr("sum(id)").collect()[0][0]
        sums = {"first": [first_sum], "second": [second_sum]}

        def query_many(name, spark, size):
            for round_ in range(6):
                frame = spark.range(size + round_).selectExpr("sum(id) AS s")
                sums[name].append(frame.collect()[0]["s"])

        threads = [threading.Thread(target=query_many, args=item)
                   for item in (("first", first, 10), ("second", second, 20))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return {"session_ids": [first.session_id, second.session_id], "sums": sums}
    finally:
        first.stop()
        second.stop()


def few_retries(spark):
    """pyspark retries UNAVAILABLE for ten minutes by default; a dead driver needs seconds."""
    from pyspark.sql.connect.client.retries import DefaultPolicy
    spark.client.set_retry_policies([DefaultPolicy(max_retries=2, initial_backoff=100,
                                                   max_backoff=500)])


def run_failover(url):
    old = SparkSession.builder.remote(url).create()
    few_retries(old)
    old_count = old.range(5).count()
    print(json.dumps({"phase": "ready", "session_id": old.session_id, "count": old_count}),
          flush=True)
    sys.stdin.readline()
    result = {"old_session_id": old.session_id}
    try:
        result["old_after_kill"] = {"status": "OK", "count": old.range(6).count()}
    except Exception as error:  # UNAVAILABLE is the point
        result["old_after_kill"] = error_report(error)
    new = SparkSession.builder.remote(url).create()
    few_retries(new)
    try:
        result["new_session_id"] = new.session_id
        result["new_count"] = new.range(8).count()
    finally:
        new.stop()
    return result


def run_idle(url):
    spark = SparkSession.builder.remote(url).create()
    try:
        before = spark.range(11).count()
        print(json.dumps({"phase": "idle", "session_id": spark.session_id}), flush=True)
        sys.stdin.readline()    # silence until the test saw the gateway close the connection
        try:
            after = {"status": "OK", "count": spark.range(12).count()}
        except Exception as error:
            after = error_report(error)
        return {"session_id": spark.session_id, "before": before, "after": after}
    finally:
        spark.stop()


MODES = {"raw": lambda args: raw_call(*args), "big": lambda args: run_big(args[0]),
         "queries": lambda args: run_queries(args[0]), "frames": lambda args: run_frames(args[0]),
         "collect": lambda args: run_collect(args[0], int(args[1])),
         "interrupt": lambda args: run_interrupt(args[0]),
         "two_sessions": lambda args: run_two_sessions(args[0]),
         "affinity": lambda args: run_affinity(args[0]),
         "failover": lambda args: run_failover(args[0]),
         "idle": lambda args: run_idle(args[0])}


def main():
    mode, args = sys.argv[1], sys.argv[2:]
    if mode in MODES:
        print(json.dumps(MODES[mode](args)))
    else:
        print(json.dumps({url: probe(url) for url in args}))


if __name__ == "__main__":
    main()
