"""count_rows.py - a PySpark job whose answer the test can check.

Generates --rows rows with spark.range, aggregates them (count and sum of
the ids, which must be N and N*(N-1)/2) and writes the result as JSON to
--output, through a temporary file and a rename so a reader never sees half
a result.  The JSON also carries the application id Spark gave the run, so
the test can compare it with the spark_app_id the daemon reports.

--marker-dir DIR   write one new file per run into DIR as soon as the
                   driver starts (the test counts runs: a job must run once)
--wait-for PATH    after the aggregate, wait until PATH exists before writing
                   the output: the job stays RUNNING until the test decides
                   it may end (after --wait-timeout seconds, default 300, it
                   fails instead, so a broken test leaves nothing behind)

Usage: count_rows.py --rows N --output PATH [--marker-dir DIR]
                     [--wait-for PATH [--wait-timeout S]]
"""
import argparse
import json
import os
import sys
import time
import uuid

from pyspark.sql import SparkSession
from pyspark.sql import functions as F


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--marker-dir")
    parser.add_argument("--wait-for")
    parser.add_argument("--wait-timeout", type=float, default=300.0)
    return parser.parse_args(argv)


def wait_for(path, timeout):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{path} did not appear within {timeout} s")
        time.sleep(0.2)


def mark_run(marker_dir):
    os.makedirs(marker_dir, exist_ok=True)
    path = os.path.join(marker_dir, f"run-{os.getpid()}-{uuid.uuid4().hex}")
    with open(path, "w") as out:
        out.write(f"{time.time()}\n")


def write_atomically(path, document):
    temporary = f"{path}.tmp-{os.getpid()}"
    with open(temporary, "w") as out:
        json.dump(document, out)
        out.flush()
        os.fsync(out.fileno())
    os.rename(temporary, path)


def main(argv):
    args = parse_args(argv)
    if args.marker_dir:
        mark_run(args.marker_dir)
    spark = SparkSession.builder.appName("count_rows").getOrCreate()
    app_id = spark.sparkContext.applicationId
    print(f"SPARKIT-APP-ID {app_id}", flush=True)
    row = spark.range(args.rows).agg(F.count("*").alias("count"),
                                     F.sum("id").alias("sum")).collect()[0]
    result = {"rows": args.rows, "count": int(row["count"]), "sum": int(row["sum"]),
              "app_id": app_id}
    print(f"SPARKIT-RESULT count={result['count']} sum={result['sum']}", flush=True)
    if args.wait_for:
        print(f"SPARKIT-WAITING {args.wait_for}", flush=True)
        wait_for(args.wait_for, args.wait_timeout)
    write_atomically(args.output, result)
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
