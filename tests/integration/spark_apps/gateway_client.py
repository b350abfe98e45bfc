"""gateway_client.py - a real pyspark Spark Connect client, run by test_gateway.py.

    python gateway_client.py queries URL   runs range/count, a groupBy, SQL and a join
    python gateway_client.py probe URL...  one small query per URL, reports the gRPC status
                                           and the client's Spark Connect session id
    python gateway_client.py big URL       sends a ~6 MiB local relation inside one plan
                                           (more than a stream's flow-control window)
    python gateway_client.py raw PORT TOKEN CLUSTER [HEX]   one plain gRPC call with HEX as the
                                           request (default empty), no client retries
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


def main():
    mode, urls = sys.argv[1], sys.argv[2:]
    if mode == "raw":
        print(json.dumps(raw_call(*urls)))
    elif mode == "big":
        print(json.dumps(run_big(urls[0])))
    elif mode == "queries":
        print(json.dumps(run_queries(urls[0])))
    else:
        print(json.dumps({url: probe(url) for url in urls}))


if __name__ == "__main__":
    main()
