"""Whether the review queue stays as fast at 100,000 waiting clips as at 1,000.

For each database (SQLite, and PostgreSQL when --postgres names one) and each size, builds a
queue of its own (SQLite: a file per size; PostgreSQL: a schema per size, queue_1000 …, in the
one database): the schema with the Alembic migrations (as the tests do), a tester and a
reviewer, and the waiting clips with bulk inserts through SQLAlchemy core (with the facts
verification records, oldest first by submitted_at), then VACUUM ANALYZE (SQLite: ANALYZE).
Then a signed-in reviewer's client on each queue (Flask's test client, in process: no network
or server in the figures) times, REPEAT rounds after WARMUP untimed ones, each round every
size in turn, so that a change in the machine's load falls on all sizes alike:

- the queue's first page            GET /review/
- a page deep in the cursor         GET /review/?cursor=… (the cursor of the clip 90% down)
- the counts the queue page polls   GET /review/counts
- claim-next                        POST /review/next (a redirect to the claimed clip), after
                                    which the clip is released again, untimed, so every
                                    round claims the same oldest clip

and, for each request, the time its SQL statements took (from the driver's execute to its
return): the part of a request that can grow with the queue. The rest (Flask, the template)
does not depend on the queue's length, but on a busy machine it moves with the load, so a
second table of the SQL time alone separates what grows from what jitters.

Prints the tables (median and p95 at each size, ratio of the largest to the smallest size)
and appends them to bench/RESULTS.md with the date, commit, cores and RAM. Target: 100k at most
1.5 x 1k.

    .venv/bin/python bench/queue.py [--sizes 1000,10000,100000] [--repeat 60]
        [--postgres postgresql://postgres@127.0.0.1:5432/bench_queue] [--no-record]

The PostgreSQL database is emptied before the run: its public schema and the queue_N schemas
are dropped and made again.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    sys.path[0] = str(HERE.parent)  # the project root, in place of this folder (see below)
    from bench._queue_bench import main

    main()
else:
    # Every script in bench/ has this folder first on sys.path, so `import queue` in them, or
    # in what they import (urllib3, concurrent.futures), finds this file: hand over the
    # standard library's module instead, and take this folder off the path.
    sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != HERE]
    del sys.modules[__name__]
    sys.modules[__name__] = importlib.import_module(__name__)
