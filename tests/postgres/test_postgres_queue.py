"""PostgresTaskQueue beyond the shared contract: wake-ups, leases, transactional publish, schema, settings."""

from __future__ import annotations

import threading

import psycopg
import pytest

from plba.contracts import Task
from plba.errors import ConfigError, QueueUnavailableError
from plba.masking import MASK
from plba.queue import build_queue
from plba.queue.postgres import PostgresTaskQueue
from plba.queue.postgres_schema import MIGRATIONS, SchemaError
from tests.postgres.server import free_port


def consume_in_thread(queue: PostgresTaskQueue, timeout: float) -> tuple[threading.Thread, list]:
    """Start a consumer blocked in `consume(timeout)`; the list receives what it returned."""
    results: list = []
    thread = threading.Thread(target=lambda: results.append(queue.consume(timeout=timeout)), daemon=True)
    thread.start()
    return thread, results


def wait_listening(queue: PostgresTaskQueue) -> None:
    """Wait until the queue's keeper listens for notifications (it starts with the first consume)."""
    from tests.helpers import wait_for

    wait_for(lambda: queue.stats()["listening"], message="the queue to LISTEN")


def test_given_an_idle_consumer_that_polls_rarely_when_a_task_is_published_then_notify_wakes_it(make_queue):
    """Given a consumer whose fallback poll is 60 s, when a task is published, then it is delivered in that wait."""
    consumer = make_queue(poll_interval=60)
    producer = make_queue()
    assert consumer.consume(timeout=0) is None
    wait_listening(consumer)
    thread, results = consume_in_thread(consumer, timeout=30)

    task = Task("wake", 1)
    producer.publish(task)
    thread.join(40)
    assert results and results[0] is not None and results[0].id == task.id


def test_given_a_row_added_without_a_notification_then_the_fallback_poll_delivers_it(make_queue, database_url):
    """Given a task inserted by plain SQL (no NOTIFY), then a waiting consumer still finds it by polling."""
    queue = make_queue(poll_interval=0.2)
    thread, results = consume_in_thread(queue, timeout=30)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO plba.tasks (queue, task_id, name, body) VALUES (%s, 'raw-1', 'raw', "
                     """'{"id": "raw-1", "name": "raw", "payload": 7, "metadata": {}}')""", [queue.name])
    thread.join(40)
    assert results and results[0] is not None and (results[0].id, results[0].payload) == ("raw-1", 7)


def test_given_a_delayed_retry_then_a_sleeping_consumer_wakes_when_it_is_due_without_polling(make_queue):
    """Given a task nacked for 0.5 s and a consumer whose fallback poll is 60 s, then it is delivered when due."""
    queue = make_queue(poll_interval=60)
    queue.publish(Task("later", 1))
    first = queue.consume(timeout=10)
    queue.nack(first, retry_delay=0.5)

    again = queue.consume(timeout=30)
    assert again is not None and again.id == first.id and again.attempts == 2


def test_given_a_long_handler_that_is_alive_then_its_lease_is_renewed_and_nobody_else_gets_the_task(make_queue):
    """Given a task held by a live consumer for three visibility timeouts, then no other consumer receives it."""
    holder = make_queue(visibility_timeout=1.0)
    other = make_queue(visibility_timeout=1.0)
    holder.publish(Task("slow", None))
    task = holder.consume(timeout=5)

    assert other.consume(timeout=3.0) is None
    holder.ack(task)
    assert other.consume(timeout=0.5) is None
    assert holder.stats()["in_flight"] == 0


def test_given_a_batch_request_larger_than_prefetch_then_at_most_prefetch_tasks_are_leased(make_queue):
    """Given prefetch 3 and ten tasks, then consume_many(10) leases three, in publishing order."""
    queue = make_queue(prefetch=3)
    queue.publish_many([Task("n", n) for n in range(10)])
    batch = queue.consume_many(10, timeout=5)
    assert [task.payload for task in batch] == [0, 1, 2]
    assert queue.stats()["in_flight"] == 3


def test_given_many_tasks_published_in_chunks_then_they_come_out_in_publishing_order(make_queue):
    """Given 2,500 tasks in one publish_many (three statements), then consumers see them in order."""
    queue = make_queue(prefetch=100)
    queue.publish_many([Task("n", n) for n in range(2500)])
    seen = []
    while len(seen) < 2500:
        batch = queue.consume_many(100, timeout=5)
        assert batch
        seen += [task.payload for task in batch]
        queue.ack_many(batch)
    assert seen == list(range(2500))


def test_given_a_task_retried_at_once_then_it_waits_behind_the_tasks_already_queued(make_queue):
    """Given tasks A and B, when A is nacked without delay, then B is delivered before A's second attempt."""
    queue = make_queue(prefetch=1)
    queue.publish_many([Task("t", "A"), Task("t", "B")])
    first = queue.consume(timeout=5)
    queue.nack(first)
    assert [queue.consume(timeout=5).payload for _ in range(2)] == ["B", "A"]


# -- transactional publish -----------------------------------------------------------------


def test_given_a_publish_in_a_transaction_that_rolls_back_then_no_task_exists(make_queue, database_url):
    """Given a business row and a task written in one transaction that rolls back, then neither exists."""
    queue = make_queue()
    with psycopg.connect(database_url) as conn:
        conn.execute("CREATE TABLE orders (id int PRIMARY KEY)")
        conn.commit()
        conn.execute("INSERT INTO orders VALUES (1)")
        queue.publish(Task("order.placed", {"order": 1}), connection=conn)
        conn.rollback()
        assert conn.execute("SELECT count(*) FROM orders").fetchone()[0] == 0
    assert queue.consume(timeout=0.5) is None
    assert queue.stats()["depth"] == 0


def test_given_a_publish_in_a_transaction_then_the_task_is_delivered_only_once_it_commits(make_queue, database_url):
    """Given a task published in an open transaction, then no consumer sees it before the commit, and one does after."""
    queue = make_queue(poll_interval=60)
    consumer = make_queue(queue.name)
    with psycopg.connect(database_url) as conn:
        conn.execute("CREATE TABLE orders (id int PRIMARY KEY)")
        conn.execute("INSERT INTO orders VALUES (2)")
        task = Task("order.placed", {"order": 2})
        queue.publish(task, connection=conn)
        assert consumer.consume(timeout=0.5) is None, "a task must not be visible before its transaction commits"
        thread, results = consume_in_thread(queue, timeout=30)
        conn.commit()
    thread.join(40)
    assert results and results[0] is not None and results[0].id == task.id


def test_given_a_publish_in_a_transaction_block_then_it_commits_with_the_block(make_queue, database_url):
    """Given `with conn.transaction():` around the business write and the publish, then both land together."""
    queue = make_queue()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE orders (id int PRIMARY KEY)")
        with conn.transaction():
            conn.execute("INSERT INTO orders VALUES (3)")
            queue.publish_many([Task("order.placed", {"order": 3}), Task("order.mail", {"order": 3})],
                               connection=conn)
        with pytest.raises(psycopg.errors.UniqueViolation), conn.transaction():
            queue.publish(Task("order.placed", {"order": 3}), connection=conn)
            conn.execute("INSERT INTO orders VALUES (3)")
    names = sorted(task.name for task in queue.consume_many(10, timeout=5))
    assert names == ["order.mail", "order.placed"]
    assert queue.consume(timeout=0.2) is None


# -- rows that are not tasks ---------------------------------------------------------------


def test_given_a_row_that_is_not_a_task_then_it_is_dead_lettered_and_the_next_task_still_comes(make_queue,
                                                                                               database_url):
    """Given a malformed row before a good task, then the row goes to the dead letters and the task is delivered."""
    queue = make_queue()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO plba.tasks (queue, task_id, name, body) VALUES (%s, 'junk', 'junk', '[1, 2]')",
                     [queue.name])
    queue.publish(Task("good", 1))
    task = queue.consume(timeout=5)
    assert task is not None and task.name == "good"
    dead = queue.list_dead().tasks
    assert len(dead) == 1 and dead[0].error.startswith("not a task")


# -- schema --------------------------------------------------------------------------------


def test_given_a_fresh_database_then_the_schema_is_created_once_and_versioned(make_queue, database_url):
    """Given an empty database, when several queues open at once, then the tables exist and the version is recorded."""
    errors: list[Exception] = []

    def open_one(n: int) -> None:
        try:
            make_queue(f"q{n}")
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=open_one, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    with psycopg.connect(database_url) as conn:
        versions = conn.execute("SELECT component, version FROM plba.schema_versions").fetchall()
    assert versions == [("queue", len(MIGRATIONS))]


def test_given_a_database_with_a_newer_schema_then_opening_the_queue_says_to_upgrade(make_queue, database_url):
    """Given a schema version beyond what this plba knows, then opening fails with one line naming both versions."""
    make_queue()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE plba.schema_versions SET version = 99 WHERE component = 'queue'")
    with pytest.raises(SchemaError, match=r"schema 'plba' is at queue version 99, newer than this plba knows"):
        PostgresTaskQueue("later", database_url)


def test_given_another_schema_then_queues_of_the_same_name_are_separate(make_queue, database_url):
    """Given two queues of one name in schemas `plba` and `other`, then a task published to one stays there."""
    mine = make_queue("same")
    theirs = make_queue("same", schema="other")
    theirs.publish(Task("t", 1))
    assert mine.consume(timeout=0.3) is None
    assert theirs.consume(timeout=5) is not None


# -- settings and errors -------------------------------------------------------------------


def test_given_a_postgres_table_then_build_queue_opens_the_postgres_backend(database_url):
    """Given `backend = "postgres"` with a URL and options, then the queue built is a PostgresTaskQueue with them."""
    table = {"backend": "postgres", "url": database_url, "visibility_timeout": 5, "max_attempts": 3,
             "retry_delay": 2, "retry_delay_max": 9, "prefetch": 7, "dead_max": 50}
    queue = build_queue("orders", {"platform.queues.orders": table})
    try:
        assert isinstance(queue, PostgresTaskQueue)
        assert (queue.visibility_timeout, queue.max_attempts, queue.prefetch, queue.dead_max) == (5, 3, 7, 50)
        assert (queue.retry_backoff.base, queue.retry_backoff.cap) == (2, 9)
        assert queue.stats()["backend"] == "postgres"
    finally:
        queue.close()


def test_given_plba_installed_then_postgres_is_a_queue_backend_entry_point():
    """Given plba's metadata, then `plba.queues` maps postgres to the PostgreSQL queue's factory."""
    from importlib.metadata import entry_points

    registered = {entry.name: entry.value for entry in entry_points(group="plba.queues")}
    assert registered["postgres"] == "plba.queue.postgres:PostgresTaskQueue.from_settings"


def test_given_the_settings_declaration_then_the_postgres_settings_default_to_it():
    """Given plba/schema.py, then every key PostgresQueueSettings reads is declared for postgres with its default."""
    import dataclasses

    from plba import schema
    from plba.queue.postgres_settings import PostgresQueueSettings

    for field in dataclasses.fields(PostgresQueueSettings):
        declared = schema.QUEUE_SETTINGS_BY_NAME[field.name]
        assert declared.applies_to("postgres"), field.name
        if declared.default is not schema.NO_DEFAULT:
            assert field.default == declared.default, field.name


def test_given_bad_settings_then_every_problem_is_listed_in_one_error():
    """Given a missing URL, a negative prefetch and a bad schema, then one ConfigError names all three keys."""
    with pytest.raises(ConfigError) as error:
        PostgresTaskQueue.from_settings("orders", {"prefetch": -1, "schema": "Bad-Name", "max_attempts": "x"})
    problems = error.value.problems
    assert any(p.startswith("platform.queues.orders.url:") for p in problems)
    assert any(p.startswith("platform.queues.orders.prefetch:") for p in problems)
    assert any(p.startswith("platform.queues.orders.schema:") for p in problems)
    assert any(p.startswith("platform.queues.orders.max_attempts:") for p in problems)


def test_given_nothing_listening_then_the_error_names_queue_and_url_but_not_the_password():
    """Given a URL where nothing listens, then opening fails naming the queue and URL, with the password masked."""
    port = free_port()
    url = f"postgresql://app:s3cret@127.0.0.1:{port}/shop"
    with pytest.raises(QueueUnavailableError) as error:
        PostgresTaskQueue.from_settings("orders", {"url": url, "socket_timeout": 1})
    message = str(error.value)
    assert "'orders'" in message and f"postgresql://app:{MASK}@127.0.0.1:{port}/shop" in message
    assert "s3cret" not in message and "\n" not in message
