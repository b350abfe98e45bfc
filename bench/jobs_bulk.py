#!/usr/bin/env python3
"""bench/jobs_bulk.py - fills a stopped sparkplaned's store with finished jobs, fast.

    bench/jobs_bulk.py DATABASE TOTAL [--spec-from OTHER_DATABASE]

Adds jobs to the `jobs` table of DATABASE (created by the daemon, which must not be running)
until it holds TOTAL bulk jobs, in ONE transaction.  Run it again with a larger TOTAL to grow
the same table (1,000 first, then 1,000,000).  Bulk job i has:

    id          job-<i as 26 digits>     (digits are Crockford base32, like the runner's ids,
                                          and bench/jobs.lua can draw them without a list)
    team        "bench" for even i, "bench-other" for odd i (so the team filter matters)
    state       SUCCEEDED, every 10th FAILED; backend "sim"; finished 3 s after creation
    created_at  2025-01-01T00:00:00.000Z + i seconds (older than anything the bench submits)
    spec        the spec of a job the daemon itself stored (--spec-from), else a typical one

Only the columns the daemon's schema declares are written; a NOT NULL column without a
default that this script does not know is an error (the schema moved on: update the script).
Job events are not written: the measured requests (GET /jobs/{id}, GET /jobs) read only the
jobs table.  Prints "inserted=N total=N seconds=S".
"""
import argparse
import datetime
import json
import sqlite3
import sys
import time

BASE = datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc)
TYPICAL_SPEC = {
    "name": "bulk", "team": "bench", "environment": "dev", "region": "local",
    "spark_version": "4.0",
    "application": {"file": "local:///bench/job.py", "args": ["1"], "py_files": [], "jars": [],
                    "conf": {}},
    "resources": {"driver": {"cores": 1, "memory": "1g"},
                  "executor": {"cores": 1, "memory": "1g", "instances": 1},
                  "dynamic_allocation": {"enabled": False, "min_executors": 0,
                                         "max_executors": 0}},
}


def timestamp(seconds):
    moment = BASE + datetime.timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def row_values(i, spec):
    created = timestamp(i)
    finished = timestamp(i + 3)
    failed = i % 10 == 9
    return {
        "id": f"job-{i:026d}",
        "team": "bench" if i % 2 == 0 else "bench-other",
        "name": f"bulk-{i}",
        "state": "FAILED" if failed else "SUCCEEDED",
        "backend": "sim",
        "spec": spec,
        "spark_app_id": f"app-sim-bulk-{i}",
        "attempt": 1,
        "max_attempts": 1,
        "reason": "simulated failure" if failed else "finished on backend sim",
        "submitted_by": "bench",
        "created_at": created,
        "updated_at": finished,
        "finished_at": finished,
    }


def schema_columns(db):
    """[(name, notnull, has_default)] of the jobs table, or exit when there is none."""
    columns = [(row[1], row[3], row[4] is not None)
               for row in db.execute("PRAGMA table_info(jobs)")]
    if not columns:
        sys.exit("jobs_bulk: no jobs table (start the daemon once to create the schema)")
    return columns


def spec_text(path):
    if path:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as other:
            row = other.execute("SELECT spec FROM jobs ORDER BY created_at LIMIT 1").fetchone()
            if row:
                return row[0]
    return json.dumps(TYPICAL_SPEC, separators=(",", ":"), sort_keys=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("database")
    parser.add_argument("total", type=int)
    parser.add_argument("--spec-from")
    args = parser.parse_args()

    db = sqlite3.connect(args.database, isolation_level=None)
    columns = schema_columns(db)
    known = row_values(0, "")
    missing = [name for name, notnull, has_default in columns
               if notnull and not has_default and name not in known]
    if missing:
        sys.exit(f"jobs_bulk: jobs has NOT NULL columns this script does not fill: {missing}")
    names = [name for name, _, _ in columns if name in known]
    spec = spec_text(args.spec_from)
    start = db.execute("SELECT count(*) FROM jobs WHERE id GLOB 'job-[0-9]*' "
                       "AND length(id) = 30 AND name GLOB 'bulk-*'").fetchone()[0]

    began = time.monotonic()
    # The daemon is stopped: no reader needs the WAL, and a rollback journal with
    # synchronous=OFF is the fastest way in.  The daemon puts WAL back when it opens.
    db.execute("PRAGMA journal_mode=DELETE")
    db.execute("PRAGMA synchronous=OFF")
    db.execute("PRAGMA cache_size=-262144")   # 256 MiB for the index pages
    sql = (f"INSERT INTO jobs ({', '.join(names)}) "
           f"VALUES ({', '.join('?' for _ in names)})")
    db.execute("BEGIN IMMEDIATE")
    db.executemany(sql, ([row[n] for n in names]
                         for row in (row_values(i, spec) for i in range(start, args.total))))
    db.execute("COMMIT")
    db.execute("PRAGMA journal_mode=WAL")
    db.close()
    print(f"inserted={max(args.total - start, 0)} total={max(args.total, start)} "
          f"seconds={time.monotonic() - began:.1f}")


if __name__ == "__main__":
    main()
