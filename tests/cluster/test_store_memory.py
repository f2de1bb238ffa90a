"""The in-process cluster store passes the cluster store contract: every scheduler of a process shares it."""

from __future__ import annotations

import pytest

from plba.cluster import build_cluster_store
from plba.cluster.memory import InProcessClusterStore
from plba.errors import ConfigError
from tests.cluster.contract import ClusterStoreContract, MakeStore


class TestInProcessClusterStore(ClusterStoreContract):
    """The contract within one process: the fleet is the process, so every owner gets the one store."""

    @pytest.fixture
    def make_store(self) -> MakeStore:
        store = InProcessClusterStore("this-process")
        return lambda owner: store

    def test_only_the_holder_renews_or_releases_a_claim(self, make_store: MakeStore) -> None:
        """Not for this store: the process is the one owner, so every scheduler in it holds its claims."""
        pytest.skip("one process is one owner in the in-process store")


@pytest.mark.parametrize(("url", "kind"), [
    ("", "InProcessClusterStore"),
    ("redis://127.0.0.1:1/0", "RedisClusterStore"),
    ("postgresql://plba@127.0.0.1:1/plba", "PostgresClusterStore"),
])
def test_the_store_is_picked_by_the_url_scheme_without_connecting(url: str, kind: str) -> None:
    if kind == "PostgresClusterStore":
        pytest.importorskip("psycopg_pool", reason="the postgres extra is not installed")
    store = build_cluster_store({"platform.cluster.url": url})
    try:
        assert type(store).__name__ == kind and store.owner
    finally:
        store.close()


def test_another_url_is_one_configuration_line_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"^platform.cluster.url: must be empty, a redis:// or a postgresql:// URL, "
                                          r"not mysql://\.\.\.$"):
        build_cluster_store({"platform.cluster.url": "mysql://db.example/plba"})
