"""gateway_client.py - a real pyspark Spark Connect client, run by test_gateway.py.

    python gateway_client.py queries URL   runs range/count, a groupBy, SQL and a join
    python gateway_client.py probe URL...  one small query per URL, reports the gRPC status
    python gateway_client.py raw PORT TOKEN CLUSTER   one plain gRPC call, no client retries
                                           (pyspark retries UNAVAILABLE for minutes)

Prints one JSON document on stdout.  A separate process keeps pyspark's
global session state and gRPC threads out of pytest.
"""
import json
import sys

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


def probe(url):
    try:
        spark = SparkSession.builder.remote(url).create()
        try:
            spark.range(3).count()
        finally:
            spark.stop()
        return {"status": "OK", "message": ""}
    except Exception as error:  # the point is to see which error
        return {"status": grpc_status_of(error), "message": str(error)[:500]}


def raw_call(port, token, cluster):
    import grpc
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary("/spark.connect.SparkConnectService/Config")
        try:
            call(b"", timeout=30, metadata=[("authorization", f"Bearer {token}"),
                                           ("x-sparkplane-cluster-id", cluster)])
            return {"status": "OK", "message": ""}
        except grpc.RpcError as error:
            return {"status": error.code().name, "message": error.details() or ""}


def main():
    mode, urls = sys.argv[1], sys.argv[2:]
    if mode == "raw":
        print(json.dumps(raw_call(*urls)))
    elif mode == "queries":
        print(json.dumps(run_queries(urls[0])))
    else:
        print(json.dumps({url: probe(url) for url in urls}))


if __name__ == "__main__":
    main()
