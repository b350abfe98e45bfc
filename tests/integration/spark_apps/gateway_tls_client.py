"""gateway_tls_client.py - a real pyspark client that reaches the gateway over TLS, as a
notebook does, run by test_gateway_tls.py.

    python gateway_tls_client.py queries URL ADDRESS
        URL      sc://analytics-dev.example.team:PORT/;token=...;user_id=...
        ADDRESS  where that name lives ("127.0.0.1:PORT"): the tests have no DNS for it

pyspark uses TLS because the URL carries a token and the host is not localhost.
The client trusts the CA in GRPC_DEFAULT_SSL_ROOTS_FILE_PATH (set by the test),
checks the gateway's certificate against the URL's host name and sends that
name as :authority, so the gateway routes by its host pattern; only the TCP
connection goes to ADDRESS (a ChannelBuilder that overrides the endpoint, the
way /etc/hosts would).

Prints one JSON document on stdout: the query results, or the gRPC status.
"""
import json
import sys

from pyspark.sql.connect.client import DefaultChannelBuilder
from pyspark.sql.connect.session import SparkSession


class PinnedAddressChannelBuilder(DefaultChannelBuilder):
    """The URL's host for TLS and :authority, the TCP connection to a fixed address."""

    def __init__(self, url, address):
        super().__init__(url)
        self._address = address
        self.setChannelOption("grpc.ssl_target_name_override", self.host)
        self.setChannelOption("grpc.default_authority", f"{self.host}:{self._port}")

    @property
    def endpoint(self):
        return self._address


def grpc_status_of(error):
    cause = error
    while cause is not None:
        code = getattr(cause, "code", None)
        if callable(code):
            try:
                return code().name
            except Exception:   # not a grpc.RpcError after all
                pass
        cause = cause.__cause__ or cause.__context__
    return "UNKNOWN: " + str(error)[:300]


def run_queries(url, address):
    builder = PinnedAddressChannelBuilder(url, address)
    assert builder.secure and not builder.use_ssl, "a token alone must make pyspark use TLS"
    spark = SparkSession.builder.channelBuilder(builder).create()
    try:
        groups = (spark.range(1000).selectExpr("id % 3 AS k").groupBy("k").count()
                  .orderBy("k").collect())
        return {
            "status": "OK",
            "count": spark.range(100).count(),
            "groups": [[row["k"], row["count"]] for row in groups],
            "sql": spark.sql("SELECT 40 + 2 AS answer").collect()[0]["answer"],
        }
    finally:
        spark.stop()


def main():
    mode, url, address = sys.argv[1:4]
    if mode != "queries":
        raise SystemExit(f"unknown mode {mode}")
    try:
        answer = run_queries(url, address)
    except Exception as error:  # the point is to see which error
        answer = {"status": grpc_status_of(error), "message": str(error)[:500]}
    print(json.dumps(answer))


if __name__ == "__main__":
    main()
