"""Users, roles, passwords and login throttling through the accounts service."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from argon2 import PasswordHasher

from plba.db import open_database
from plba.users import (
    AccountError,
    Accounts,
    InvalidLogin,
    LastAdmin,
    LoginThrottle,
    LoginThrottled,
    Passwords,
    Role,
)
from tests.users.conftest import quick_passwords

PASSWORD = "correct horse battery"


class CountingHasher(PasswordHasher):
    """A quick argon2id hasher that remembers which hashes it verified."""

    def __init__(self, **params) -> None:
        super().__init__(**({"time_cost": 1, "memory_cost": 1024, "parallelism": 1} | params))
        self.verified: list[str] = []

    def verify(self, hash, password) -> bool:  # noqa: A002 - argon2's parameter name
        """Record the hash, then verify."""
        self.verified.append(hash)
        return super().verify(hash, password)


def test_roles_each_include_the_one_before() -> None:
    # Given the three roles, then each includes those before it and not those after
    assert Role.ADMIN.includes(Role.OPERATOR) and Role.OPERATOR.includes(Role.VIEWER)
    assert Role.VIEWER.includes(Role.VIEWER)
    assert not Role.VIEWER.includes(Role.OPERATOR) and not Role.OPERATOR.includes(Role.ADMIN)
    with pytest.raises(AccountError, match="unknown role 'root': choose viewer, operator or admin"):
        Role.parse("root")


def test_a_user_is_added_listed_changed_and_removed(accounts: Accounts) -> None:
    # Given no users, then there are none (and the database file is not even created)
    assert not accounts.users.any() and accounts.users.list() == [] and not accounts.db.exists()
    # When two users are added
    accounts.users.add("bob", "viewer", PASSWORD)
    accounts.users.add("alice", Role.OPERATOR, PASSWORD)
    # Then they are listed by name with their roles, without any hash
    assert accounts.users.any()
    assert [(user.name, user.role) for user in accounts.users.list()] == [("alice", "operator"), ("bob", "viewer")]
    assert set(accounts.users.get("bob").to_dict()) == {"name", "role", "created_at", "updated_at"}
    # When bob's role changes and alice is removed, then that is what the database holds
    assert accounts.users.set_role("bob", "admin").role is Role.ADMIN
    accounts.users.remove("alice")
    assert [user.name for user in accounts.users.list()] == ["bob"]


@pytest.mark.parametrize(("name", "role", "password", "message"), [
    ("bob", "viewer", PASSWORD, "a user named 'bob' already exists"),
    ("new", "king", PASSWORD, "unknown role 'king'"),
    ("new", "viewer", "", "the password is empty"),
    ("new", "viewer", "short", "the password is too short: use at least 12 characters"),
    ("new", "viewer", "two\nlines of it", "the password must be one line"),
    ("has space", "viewer", PASSWORD, "invalid user name 'has space'"),
    ("service", "viewer", PASSWORD, "the user name 'service' is reserved"),
])
def test_bad_user_input_is_refused_and_changes_nothing(accounts: Accounts, name, role, password, message) -> None:
    # Given one user
    accounts.users.add("bob", "viewer", PASSWORD)
    # When a bad add is tried, then it is refused with one line and bob stays alone
    with pytest.raises(AccountError, match=message):
        accounts.users.add(name, role, password)
    assert [user.name for user in accounts.users.list()] == ["bob"]


def test_changing_an_unknown_user_says_so(accounts: Accounts) -> None:
    # Given no user called ghost, then every change to ghost names it
    for change in (lambda: accounts.users.remove("ghost"), lambda: accounts.users.set_role("ghost", "admin"),
                   lambda: accounts.users.set_password("ghost", PASSWORD)):
        with pytest.raises(AccountError, match="no user named 'ghost'"):
            change()


def test_login_accepts_the_password_and_refuses_anything_else_with_one_answer(accounts: Accounts) -> None:
    # Given a user
    accounts.users.add("alice", "operator", PASSWORD)
    # When she logs in with her password, then she is the user
    assert accounts.users.authenticate("alice", PASSWORD).name == "alice"
    # When the password is wrong or the user unknown, then the refusal is the same
    with pytest.raises(InvalidLogin) as wrong:
        accounts.users.authenticate("alice", "not her password")
    with pytest.raises(InvalidLogin) as unknown:
        accounts.users.authenticate("mallory", PASSWORD)
    assert str(wrong.value) == str(unknown.value) == "the user name or the password is wrong"


def test_an_unknown_user_costs_one_argon2_verification_like_a_wrong_password(db, clock) -> None:
    # Given accounts whose hasher records what it verifies
    hasher = CountingHasher()
    accounts = Accounts(db, passwords=Passwords(hasher), clock=clock)
    accounts.users.add("alice", "viewer", PASSWORD)
    # When a wrong password and an unknown user are tried
    for name in ("alice", "mallory"):
        with pytest.raises(InvalidLogin):
            accounts.users.authenticate(name, "guess guess guess")
    # Then each cost exactly one argon2id verification of a hash with the same parameters
    assert len(hasher.verified) == 2
    assert all(encoded.startswith("$argon2id$v=19$m=1024,t=1,p=1$") for encoded in hasher.verified)


def test_a_new_password_replaces_the_old_one(accounts: Accounts) -> None:
    # Given a user
    accounts.users.add("alice", "viewer", PASSWORD)
    # When her password changes, then only the new password works
    accounts.users.set_password("alice", "a new and longer passphrase")
    assert accounts.users.authenticate("alice", "a new and longer passphrase").name == "alice"
    with pytest.raises(InvalidLogin):
        accounts.users.authenticate("alice", PASSWORD)


def test_the_only_admin_is_kept_when_asked(accounts: Accounts) -> None:
    # Given one admin and one viewer
    accounts.users.add("root", "admin", PASSWORD)
    accounts.users.add("bob", "viewer", PASSWORD)
    # When the console asks to demote or remove the only admin, then it is refused and nothing changes
    for change in (lambda: accounts.users.set_role("root", "operator", keep_an_admin=True),
                   lambda: accounts.users.remove("root", keep_an_admin=True)):
        with pytest.raises(LastAdmin, match="root is the only admin: give another user the admin role first"):
            change()
    assert accounts.users.require("root").role is Role.ADMIN
    # When bob becomes admin too, then root may go, and bob is then the one kept
    accounts.users.set_role("bob", "admin", keep_an_admin=True)
    accounts.users.set_role("root", "viewer", keep_an_admin=True)
    accounts.users.remove("root", keep_an_admin=True)
    with pytest.raises(LastAdmin):
        accounts.users.remove("bob", keep_an_admin=True)
    # And without the guard (the command line on the server) the last admin can go
    accounts.users.remove("bob")
    assert accounts.users.list() == []


def test_a_hash_made_with_old_parameters_is_upgraded_at_login(db, clock) -> None:
    # Given a user whose hash was made with weaker parameters
    Accounts(db, passwords=quick_passwords(), clock=clock).users.add("alice", "viewer", PASSWORD)
    stronger = Passwords(PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1))
    accounts = Accounts(db, passwords=stronger, clock=clock)
    # When she logs in with a hasher using today's parameters
    accounts.users.authenticate("alice", PASSWORD)
    # Then her stored hash now uses them, and still verifies
    with db.transaction() as tx:
        encoded = tx.one("SELECT password_hash FROM plba_users WHERE name = 'alice'")["password_hash"]
    assert encoded.startswith("$argon2id$v=19$m=2048,t=2,p=1$")
    assert not stronger.needs_rehash(encoded)
    assert accounts.users.authenticate("alice", PASSWORD).name == "alice"


def test_five_failures_in_the_window_refuse_logins_until_the_oldest_leaves_it(accounts: Accounts, clock) -> None:
    # Given a user who fails five times, a minute apart
    accounts.users.add("alice", "viewer", PASSWORD)
    for _ in range(5):
        with pytest.raises(InvalidLogin):
            accounts.users.authenticate("alice", "wrong password!")
        clock.advance(60)
    # When she then gives the right password, then she is refused with the seconds to wait
    with pytest.raises(LoginThrottled) as refused:
        accounts.users.authenticate("alice", PASSWORD)
    assert refused.value.retry_after == 900 - 5 * 60
    assert accounts.users.retry_after("alice") == 600
    # When the oldest failure has left the 15-minute window, then the right password works again
    clock.advance(600)
    assert accounts.users.authenticate("alice", PASSWORD).name == "alice"
    # And a success clears the count
    with pytest.raises(InvalidLogin):
        accounts.users.authenticate("alice", "wrong password!")
    assert accounts.users.retry_after("alice") == 0


def test_unknown_names_are_throttled_the_same_way(accounts: Accounts) -> None:
    # Given five failures for a name nobody has
    for _ in range(5):
        with pytest.raises(InvalidLogin):
            accounts.users.authenticate("mallory", PASSWORD)
    # Then the sixth attempt is throttled exactly as for a real user
    with pytest.raises(LoginThrottled):
        accounts.users.authenticate("mallory", PASSWORD)


def test_the_throttle_follows_its_settings(db, clock) -> None:
    # Given settings for 2 attempts in a minute
    throttle = LoginThrottle.from_settings(_Settings({"platform.admin.login_attempts": 2,
                                                      "platform.admin.login_window": 60}))
    accounts = Accounts(db, passwords=quick_passwords(), throttle=throttle, clock=clock)
    # When two logins fail, then the third is throttled for the rest of the minute
    for _ in range(2):
        with pytest.raises(InvalidLogin):
            accounts.users.authenticate("alice", PASSWORD)
    with pytest.raises(LoginThrottled) as refused:
        accounts.users.authenticate("alice", PASSWORD)
    assert refused.value.retry_after == 60


FAIL_LOGINS = textwrap.dedent('''
    import sys
    from argon2 import PasswordHasher
    from plba.db import open_database
    from plba.users import Accounts, InvalidLogin, Passwords

    accounts = Accounts(open_database(sys.argv[1]), Passwords(PasswordHasher(time_cost=1, memory_cost=1024,
                                                                            parallelism=1)))
    for _ in range(5):
        try:
            accounts.users.authenticate("alice", "not the password")
        except InvalidLogin:
            pass
''')


def test_the_throttle_holds_across_processes(location: str) -> None:
    # Given a user, and another process that fails five logins for her
    accounts = Accounts(open_database(location), passwords=quick_passwords())
    accounts.users.add("alice", "viewer", PASSWORD)
    subprocess.run([sys.executable, "-c", FAIL_LOGINS, location], check=True, timeout=60)
    # When this process tries the right password, then it is throttled too
    with pytest.raises(LoginThrottled):
        accounts.users.authenticate("alice", PASSWORD)
    accounts.db.close()


class _Settings:
    """The reading interface of settings, over a flat dict."""

    def __init__(self, values: dict) -> None:
        self.values = values

    def get(self, key: str, default=None):
        """The value of `key`, or `default`."""
        return self.values.get(key, default)
