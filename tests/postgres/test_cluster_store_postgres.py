"""The PostgreSQL cluster store: the cluster store contract, its own versioned tables, outages it survives."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from plba.cluster.postgres import COMPONENT, MIGRATIONS, ClusterUnavailableError, PostgresClusterStore
from plba.masking import MASK
from plba.postgres import SchemaError
from plba.testing import wait_until
from tests.cluster.contract import ClusterStoreContract, MakeStore
from tests.postgres.server import free_port

SLOT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def made(database_url: str) -> Iterator[list[PostgresClusterStore]]:
    """Stores a test made, closed afterwards."""
    stores: list[PostgresClusterStore] = []
    yield stores
    for store in stores:
        store.close()


class TestPostgresClusterStore(ClusterStoreContract):
    """Stores on a database of the test's own."""

    @pytest.fixture
    def make_store(self, database_url: str, made: list[PostgresClusterStore]) -> MakeStore:
        def make(owner: str) -> PostgresClusterStore:
            made.append(PostgresClusterStore(database_url, owner))
            return made[-1]

        return make


def test_the_tables_are_made_on_first_use_once_and_their_version_recorded(database_url, made) -> None:
    # Given a store built while nothing is in the database, then building it created nothing
    made.append(PostgresClusterStore(database_url, "first"))
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT to_regclass('plba.cluster_instances')").fetchone()[0] is None
    # When two stores are used, then the tables exist at the latest version, recorded once
    made.append(PostgresClusterStore(database_url, "second"))
    assert made[0].claim_slot("fleet.sync", SLOT, 60) and not made[1].claim_slot("fleet.sync", SLOT, 60)
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT version FROM plba.schema_versions WHERE component = %s",
                            [COMPONENT]).fetchall() == [(len(MIGRATIONS),)]


def test_a_newer_schema_is_refused_with_one_line(database_url, made) -> None:
    # Given a database whose cluster tables a newer plba made
    made.append(PostgresClusterStore(database_url, "first"))
    made[0].beat({"id": "first"}, 60)
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE plba.schema_versions SET version = 99 WHERE component = %s", [COMPONENT])
    # When this plba uses them, then it refuses naming the versions
    made.append(PostgresClusterStore(database_url, "second"))
    with pytest.raises(SchemaError, match=r"schema 'plba' is at cluster version 99, newer than this plba knows"):
        made[1].instances()


def test_old_claims_are_deleted_as_new_ones_are_made(database_url, made) -> None:
    # Given claims kept only for a moment, expired by now
    store = PostgresClusterStore(database_url, "first")
    made.append(store)
    assert store.claim_slot("fleet.sync", SLOT, 0.05) and store.claim("manual:1", 0.05)
    time.sleep(0.1)
    # When later claims are made, then only those are kept
    assert store.claim_slot("fleet.sync", SLOT + timedelta(seconds=10), 60) and store.claim("manual:2", 60)
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT slot FROM plba.schedule_claims").fetchall() == [(SLOT + timedelta(seconds=10),)]
        assert conn.execute("SELECT key FROM plba.cluster_claims").fetchall() == [("manual:2",)]


def test_an_unreachable_server_raises_one_line_without_the_password(made) -> None:
    # Given a store whose server does not listen, then building it still works
    store = PostgresClusterStore(f"postgresql://plba:s3cret-pw@127.0.0.1:{free_port()}/plba", "first",
                                 socket_timeout=1)
    made.append(store)
    # When it is used, then the error names the key and the masked URL
    with pytest.raises(ClusterUnavailableError) as failed:
        store.beat({"id": "first"}, 60)
    message = str(failed.value)
    assert message.startswith(f"platform.cluster.url: PostgreSQL at postgresql://plba:{MASK}@127.0.0.1:")
    assert "while beating" in message and "s3cret-pw" not in message


def test_a_restarted_server_is_used_again_without_intervention(own_postgres, made) -> None:
    # Given a store in use
    url = own_postgres.create_database("fleet")
    store = PostgresClusterStore(url, "first", socket_timeout=2)
    made.append(store)
    store.beat({"id": "first"}, 60)
    # When the server goes away, then the store raises; once it is back, the store works again
    own_postgres.stop()
    with pytest.raises(ClusterUnavailableError):
        store.instances()
    own_postgres.start()
    assert [record["id"] for record in wait_until(store.instances, message="the store answers again")] == ["first"]
