"""The PostgreSQL queue's tables, their versioned migrations, and the statements the queue runs.

Every queue of one database shares three tables in one schema (`plba` unless `schema` says
otherwise), told apart by a `queue` column: `tasks` (waiting, delayed and leased tasks),
`dead_tasks` and `queues` (one row per queue with its pause flag). `schema_versions` records
which migrations ran, per component, so that other parts of the platform can keep their own
tables in the same schema. A task's state is in two columns:

- `visible_at <= now()`: ready to be leased (a lease whose holder died is simply one whose
  `visible_at` has passed, so it needs no reaper);
- `visible_at > now()` and `leased_by` set: in flight until `visible_at`, the lease's end;
- `visible_at > now()` and `leased_by` null: delayed, for a retry.

Tasks are leased in `seq` order through the index on `(queue, seq)`. Leasing changes no indexed
column, so with the table's spare room per page (fillfactor 50) it is a HOT update that writes no
index entry; a retry takes a new `seq`, so it waits behind the tasks already queued.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from plba.postgres import SchemaError, migrate_component

__all__ = ["MIGRATIONS", "SchemaError", "Statements", "channel_for", "check_schema_name", "migrate"]

COMPONENT = "queue"
SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,47}")

# Migration N (1-based) brings the queue's tables from version N-1 to N. Append, never edit.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE {s}.tasks (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        queue text NOT NULL,
        task_id text NOT NULL,
        name text NOT NULL,
        body jsonb NOT NULL,
        attempts integer NOT NULL DEFAULT 0,
        visible_at timestamptz NOT NULL DEFAULT now(),
        leased_by text,
        enqueued_at timestamptz NOT NULL DEFAULT now()
    ) WITH (fillfactor = 50);
    -- Leasing reads this index in order, skipping the few rows leased or delayed at its head.
    CREATE INDEX tasks_order ON {s}.tasks (queue, seq);
    CREATE TABLE {s}.dead_tasks (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        queue text NOT NULL,
        task_id text NOT NULL,
        name text NOT NULL,
        body jsonb NOT NULL,
        attempts integer NOT NULL,
        error text NOT NULL,
        dead_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX dead_tasks_queue ON {s}.dead_tasks (queue, seq);
    CREATE INDEX dead_tasks_task ON {s}.dead_tasks (queue, task_id);
    CREATE TABLE {s}.queues (
        queue text PRIMARY KEY,
        paused boolean NOT NULL DEFAULT false,
        changed_at timestamptz NOT NULL DEFAULT now()
    );
    """,
)


def check_schema_name(name: str) -> str:
    """The schema name if it is a plain lower-case SQL identifier; ValueError otherwise."""
    if not SCHEMA_NAME.fullmatch(name):
        raise ValueError(f"schema {name!r} must be a lower-case identifier (letters, digits, _; at most 48)")
    return name


def migrate(conn: Any, schema: str) -> int:
    """Create or upgrade the queue's tables in `schema` on an autocommit connection; returns the version."""
    return migrate_component(conn, schema, COMPONENT, MIGRATIONS)


def channel_for(schema: str, queue: str) -> str:
    """The LISTEN/NOTIFY channel of a queue: readable when it fits PostgreSQL's 63 bytes, else a digest."""
    channel = f"plba.{schema}.{queue}"
    if len(channel.encode()) <= 63:
        return channel
    return "plba." + hashlib.sha256(f"{schema}.{queue}".encode()).hexdigest()[:40]


@dataclass(frozen=True)
class Statements:
    """The SQL of one queue's operations, with the schema filled in once."""

    publish: str
    lease: str
    next_visible: str
    ack: str
    retry: str
    dead: str
    release: str
    extend: str
    stats: str
    trim_dead: str
    dead_list: str
    requeue: str
    purge_dead: str
    purge_ready: str
    set_paused: str
    is_paused: str

    @classmethod
    def for_schema(cls, schema: str) -> Statements:
        """The statements on the tables of `schema` (a name already checked by `check_schema_name`)."""
        s = f'"{check_schema_name(schema)}"'
        notify = "SELECT pg_notify(%(channel)s, '') FROM {cte} LIMIT 1"
        return cls(
            # Parameters of all statements: queue, channel, consumer by name; lists as arrays.
            publish=f"""
                WITH added AS (
                    INSERT INTO {s}.tasks (queue, task_id, name, body)
                    SELECT %(queue)s, t.id, t.name, t.body::jsonb
                    FROM unnest(%(ids)s::text[], %(names)s::text[], %(bodies)s::text[]) WITH ORDINALITY
                        AS t(id, name, body, n)
                    ORDER BY t.n
                    RETURNING 1)
                {notify.format(cte="added")}""",
            # Attempts are counted here, at delivery, so a crash in the handler counts too.
            # Acks waiting to be sent ride along with the next lease: one round trip for both.
            lease=f"""
                WITH done AS (DELETE FROM {s}.tasks WHERE seq = ANY(%(acks)s::bigint[])),
                next AS (
                    SELECT seq FROM {s}.tasks
                    WHERE queue = %(queue)s AND visible_at <= now()
                      AND NOT EXISTS (SELECT 1 FROM {s}.queues q WHERE q.queue = %(queue)s AND q.paused)
                    ORDER BY seq
                    LIMIT %(count)s
                    FOR UPDATE SKIP LOCKED)
                UPDATE {s}.tasks AS t
                SET attempts = t.attempts + 1, leased_by = %(consumer)s,
                    visible_at = now() + %(lease)s * interval '1 second'
                FROM next WHERE t.seq = next.seq
                RETURNING t.seq, t.attempts, t.body""",
            # Seconds until the next delayed task or expiring lease becomes visible, and the pause flag.
            next_visible=f"""
                SELECT extract(epoch FROM min(visible_at) - now()),
                       coalesce((SELECT paused FROM {s}.queues WHERE queue = %(queue)s), false)
                FROM {s}.tasks WHERE queue = %(queue)s AND visible_at > now()""",
            # A finished task is deleted whoever holds its lease now: it is done either way.
            ack=f"DELETE FROM {s}.tasks WHERE seq = ANY(%(seqs)s::bigint[])",
            retry=f"""
                WITH retried AS (
                    UPDATE {s}.tasks AS t
                    SET seq = DEFAULT, leased_by = NULL, body = r.body::jsonb,
                        visible_at = now() + r.delay * interval '1 second'
                    FROM unnest(%(seqs)s::bigint[], %(delays)s::float8[], %(bodies)s::text[]) AS r(seq, delay, body)
                    WHERE t.seq = r.seq AND t.leased_by = %(consumer)s
                    RETURNING r.delay)
                SELECT pg_notify(%(channel)s, '') FROM retried WHERE delay <= 0 LIMIT 1""",
            dead=f"""
                WITH gone AS (
                    DELETE FROM {s}.tasks AS t
                    USING unnest(%(seqs)s::bigint[], %(bodies)s::text[], %(errors)s::text[]) AS d(seq, body, error)
                    WHERE t.seq = d.seq AND t.leased_by = %(consumer)s
                    RETURNING t.queue, t.task_id, t.name, t.attempts, d.body, d.error)
                INSERT INTO {s}.dead_tasks (queue, task_id, name, attempts, body, error)
                SELECT queue, task_id, name, attempts, body::jsonb, error FROM gone""",
            # A task that never started goes back at once, its attempt uncounted.
            release=f"""
                WITH released AS (
                    UPDATE {s}.tasks SET leased_by = NULL, visible_at = now(), attempts = greatest(attempts - 1, 0)
                    WHERE seq = ANY(%(seqs)s::bigint[]) AND leased_by = %(consumer)s
                    RETURNING 1)
                {notify.format(cte="released")}""",
            # Only leases this consumer still holds are renewed: one taken over by another stays theirs.
            extend=f"""
                UPDATE {s}.tasks SET visible_at = now() + %(lease)s * interval '1 second'
                WHERE seq = ANY(%(seqs)s::bigint[]) AND leased_by = %(consumer)s""",
            stats=f"""
                SELECT count(*) FILTER (WHERE visible_at <= now()),
                       count(*) FILTER (WHERE visible_at > now() AND leased_by IS NOT NULL),
                       count(*) FILTER (WHERE visible_at > now() AND leased_by IS NULL),
                       (SELECT count(*) FROM {s}.dead_tasks WHERE queue = %(queue)s),
                       coalesce((SELECT paused FROM {s}.queues WHERE queue = %(queue)s), false)
                FROM {s}.tasks WHERE queue = %(queue)s""",
            # Keep the newest `dead_max` dead letters of the queue.
            trim_dead=f"""
                DELETE FROM {s}.dead_tasks WHERE queue = %(queue)s AND seq <= (
                    SELECT seq FROM {s}.dead_tasks WHERE queue = %(queue)s
                    ORDER BY seq DESC OFFSET %(dead_max)s LIMIT 1)""",
            dead_list=f"""
                SELECT seq, body, attempts, error, extract(epoch FROM dead_at) FROM {s}.dead_tasks
                WHERE queue = %(queue)s AND seq > %(after)s ORDER BY seq LIMIT %(limit)s""",
            # One statement moves the rows, so a crash part way neither loses nor copies a task; of two
            # requeues at once, the second finds the rows the first moved gone and skips them.
            requeue=f"""
                WITH moved AS (
                    DELETE FROM {s}.dead_tasks
                    WHERE queue = %(queue)s AND (%(all)s OR task_id = ANY(%(ids)s::text[]))
                    RETURNING seq, task_id, name, body),
                added AS (
                    INSERT INTO {s}.tasks (queue, task_id, name, body)
                    SELECT %(queue)s, task_id, name,
                           jsonb_set(body, '{{metadata}}',
                                     (coalesce(body->'metadata', '{{}}') - 'error' - 'dead_lettered_at')
                                     || '{{"attempts": 0}}')
                    FROM moved ORDER BY seq
                    RETURNING 1)
                SELECT (SELECT array_agg(task_id) FROM moved),
                       (SELECT count(*) FROM (SELECT pg_notify(%(channel)s, '') FROM added LIMIT 1) AS woken)""",
            purge_dead=f"DELETE FROM {s}.dead_tasks WHERE queue = %(queue)s",
            # Ready: visible now, so neither leased nor delayed (an expired lease is ready again).
            purge_ready=f"DELETE FROM {s}.tasks WHERE queue = %(queue)s AND visible_at <= now()",
            set_paused=f"""
                WITH flag AS (
                    INSERT INTO {s}.queues (queue, paused) VALUES (%(queue)s, %(paused)s)
                    ON CONFLICT (queue) DO UPDATE SET paused = excluded.paused, changed_at = now()
                    RETURNING paused)
                SELECT pg_notify(%(channel)s, '') FROM flag WHERE NOT paused""",
            is_paused=f"SELECT coalesce((SELECT paused FROM {s}.queues WHERE queue = %(queue)s), false)",
        )
