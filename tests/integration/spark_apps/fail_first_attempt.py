"""fail_first_attempt.py - a PySpark job that fails once, then succeeds.

The first run creates MARKER and raises; a later run (the runner's retry,
max_attempts > 1) finds MARKER, counts rows with Spark and writes OUTPUT.

Usage: fail_first_attempt.py MARKER OUTPUT
"""
import json
import os
import sys

from pyspark.sql import SparkSession


def main(argv):
    if len(argv) != 2:
        print("usage: fail_first_attempt.py MARKER OUTPUT", file=sys.stderr)
        return 2
    marker, output = argv
    spark = SparkSession.builder.appName("fail_first_attempt").getOrCreate()
    rows = spark.range(1000).count()
    if not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError("first attempt fails on purpose")
    with open(output, "w") as f:
        json.dump({"rows": rows}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
