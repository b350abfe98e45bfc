"""sleep_in_udf.py - a PySpark job that runs far longer than any test waits.

One task whose Python function sleeps for SECONDS, so while it runs there is
a JVM driver, a Python driver and a Python worker: the processes a cancel
must remove.  Before it sleeps the worker creates STARTED_FILE, so the test
knows the worker exists.  If it is ever allowed to finish it exits 0.

Usage: sleep_in_udf.py SECONDS STARTED_FILE
"""
import sys


def main(argv):
    from pyspark.sql import SparkSession

    if len(argv) != 2:
        print("usage: sleep_in_udf.py SECONDS STARTED_FILE", file=sys.stderr)
        return 2
    seconds, started_file = float(argv[0]), argv[1]

    def sleep(value):
        import time
        with open(started_file, "w") as out:
            out.write(f"{time.time()}\n")
        time.sleep(seconds)
        return value

    spark = SparkSession.builder.appName("sleep_in_udf").getOrCreate()
    print(f"SPARKIT-SLEEPING {seconds}", flush=True)
    done = spark.sparkContext.parallelize([1], 1).map(sleep).collect()
    print(f"SPARKIT-WOKE {done}", flush=True)
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
