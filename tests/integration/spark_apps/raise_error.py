"""raise_error.py - a PySpark job that fails the way user code fails.

Starts a Spark session, runs one small action (so the failure happens in a
live application, not before it), then raises ValueError with the message
given as the only argument.  The test expects that message in the job's
`reason`.

Usage: raise_error.py MESSAGE
"""
import sys

from pyspark.sql import SparkSession


def main(argv):
    if len(argv) != 1:
        print("usage: raise_error.py MESSAGE", file=sys.stderr)
        return 2
    spark = SparkSession.builder.appName("raise_error").getOrCreate()
    print(f"SPARKIT-ROWS {spark.range(10).count()}", flush=True)
    raise ValueError(argv[0])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
