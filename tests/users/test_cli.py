"""`plba users` and `plba tokens`: arguments and one-line errors in-process through Typer's CliRunner.

Hidden prompts run on a real terminal, and concurrent adds as real processes.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from pathlib import Path

import pytest

from plba.db import open_database
from plba.users import Accounts
from tests.helpers import plba, plba_in_process
from tests.users.conftest import quick_passwords

PASSWORD = "correct horse battery"


def users(project: Path, env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    """`plba ARGS` in-process in `project` with `stdin` piped in (nothing when None)."""
    return plba_in_process(*args, cwd=project, env=env, stdin=stdin)


def add(project: Path, env: dict[str, str], name: str, role: str, password: str = PASSWORD) -> None:
    """Add a user through the CLI, failing the test if it does not work."""
    result = users(project, env, "users", "add", name, "--role", role, "--password-stdin", stdin=password + "\n")
    assert result.returncode == 0, result.stderr


def on_terminal(project: Path, env: dict[str, str], args: list[str], answers: list[str]) -> tuple[int, str]:
    """Run `plba ARGS` on a pseudo-terminal, typing each answer after a prompt; (exit code, all it showed)."""
    master, slave = os.openpty()
    # A new session has no controlling terminal, so the prompt uses this pty (never the test runner's).
    process = subprocess.Popen([sys.executable, "-m", "plba", *args], cwd=project, env=env, stdin=slave, stdout=slave,
                               stderr=slave, start_new_session=True)
    os.close(slave)
    shown = b""
    try:
        for asked, answer in enumerate(answers, 1):
            # getpass flushes pending input when it turns echo off, so answer only once the prompt is shown.
            while shown.count(b"assword") < asked:
                shown += _read(master)
            os.write(master, answer.encode() + b"\n")
        while chunk := _read(master):
            shown += chunk
        return process.wait(30), shown.decode()
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
            process.wait()


def _read(fd: int) -> bytes:
    ready, _, _ = select.select([fd], [], [], 30)
    assert ready, "the command printed nothing for 30 s"
    try:
        return os.read(fd, 4096)
    except OSError:  # EIO: the process closed the terminal
        return b""


def test_a_user_added_with_password_stdin_is_listed_and_can_log_in(project, env) -> None:
    # When an admin is added with the password piped in
    result = users(project, env, "users", "add", "admin", "--role", "admin", "--password-stdin", stdin=PASSWORD + "\n")
    # Then it says so, and the list shows the user with the role
    assert (result.returncode, result.stdout) == (0, "added user admin (admin)\n")
    listed = json.loads(users(project, env, "users", "list", "--json").stdout)
    assert [(row["name"], row["role"]) for row in listed] == [("admin", "admin")]
    # And the password (without the newline) is the one that logs in
    accounts = Accounts(open_database(str(project / "var" / "plba.sqlite")))
    assert accounts.users.authenticate("admin", PASSWORD).role == "admin"
    accounts.db.close()


def test_the_password_is_asked_twice_without_echo(project, env) -> None:
    # When a user is added on a terminal and the password typed twice
    code, shown = on_terminal(project, env, ["users", "add", "alice", "--role", "operator"], [PASSWORD, PASSWORD])
    # Then both prompts appeared, the password was never echoed, and the user exists
    assert code == 0, shown
    assert "Password for alice:" in shown and "Repeat the password:" in shown
    assert PASSWORD not in shown
    assert "added user alice (operator)" in shown
    # And passwd asks the same way
    code, shown = on_terminal(project, env, ["users", "passwd", "alice"], ["another long passphrase"] * 2)
    assert (code, "changed the password of alice" in shown) == (0, True)


def test_two_different_passwords_are_refused_and_nothing_is_added(project, env) -> None:
    # When the two typed passwords differ
    code, shown = on_terminal(project, env, ["users", "add", "alice", "--role", "viewer"], [PASSWORD, PASSWORD + "x"])
    # Then it exits 2 with one line, and no user exists
    assert code == 2
    assert "error: the two passwords do not match" in shown
    assert json.loads(users(project, env, "users", "list", "--json").stdout) == []


@pytest.mark.parametrize(("args", "stdin", "message"), [
    (["users", "add", "admin", "--role", "admin", "--password-stdin"], PASSWORD, "a user named 'admin' already exists"),
    (["users", "add", "bob", "--role", "root", "--password-stdin"], PASSWORD, "unknown role 'root'"),
    (["users", "add", "bob", "--role", "viewer", "--password-stdin"], "\n", "the password is empty"),
    (["users", "add", "bob", "--role", "viewer", "--password-stdin"], "short\n", "the password is too short"),
    (["users", "add", "bob", "--role", "viewer"], None, "no terminal to ask for the password on"),
    (["users", "remove", "ghost"], None, "no user named 'ghost'"),
    (["users", "set-role", "ghost", "viewer"], None, "no user named 'ghost'"),
    (["users", "set-role", "admin", "boss"], None, "unknown role 'boss'"),
    (["users", "passwd", "ghost", "--password-stdin"], PASSWORD, "no user named 'ghost'"),
    (["tokens", "create", "ghost"], None, "no user named 'ghost'"),
    (["tokens", "revoke", "0123456789ab"], None, "no token with id '0123456789ab'"),
])
def test_bad_input_is_one_line_with_exit_2_and_changes_nothing(project, env, args, stdin, message) -> None:
    # Given one admin
    accounts = Accounts(open_database(str(project / "var" / "plba.sqlite")), passwords=quick_passwords())
    accounts.users.add("admin", "admin", PASSWORD)
    before = accounts.users.list()
    # When the command is misused
    result = users(project, env, *args, stdin=stdin)
    # Then it exits 2 with one error line naming the problem, and the users are as before
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert accounts.users.list() == before and accounts.tokens.list() == []
    accounts.db.close()


def test_a_password_cannot_be_given_on_the_command_line(project, env) -> None:
    # When a password option is tried, then there is none
    result = users(project, env, "users", "add", "bob", "--role", "viewer", "--password", PASSWORD)
    assert result.returncode == 2 and "No such option" in result.stderr


def test_users_are_changed_and_removed(project, env) -> None:
    # Given two users
    add(project, env, "alice", "viewer")
    add(project, env, "bob", "viewer")
    # When alice is promoted and bob removed
    assert users(project, env, "users", "set-role", "alice", "admin").stdout == "alice now has the admin role\n"
    assert users(project, env, "users", "remove", "bob").returncode == 0
    # Then the list says so, as a table too
    listed = json.loads(users(project, env, "users", "list", "--json").stdout)
    assert [(row["name"], row["role"]) for row in listed] == [("alice", "admin")]
    assert "alice" in users(project, env, "users", "list").stdout


def test_a_token_is_printed_once_and_then_only_listed_by_id(project, env) -> None:
    # Given a user
    add(project, env, "alice", "operator")
    # When a token is created with an expiry
    created = users(project, env, "tokens", "create", "alice", "--expires-days", "30")
    # Then stdout is the token alone, stderr says it is shown once
    token = created.stdout.strip()
    assert created.returncode == 0 and token.startswith("plba_") and created.stdout == token + "\n"
    assert "shown only now" in created.stderr
    # And the list shows its id, user, role and expiry, never the token
    listed = users(project, env, "tokens", "list", "--json").stdout
    assert token not in listed and token not in users(project, env, "tokens", "list").stdout
    (row,) = json.loads(listed)
    assert (row["user"], row["role"], row["state"]) == ("alice", "operator", "active")
    assert row["expires_at"] is not None
    # When it is revoked, then the list says so
    assert users(project, env, "tokens", "revoke", row["id"]).stdout == f"revoked token {row['id']} of alice\n"
    assert json.loads(users(project, env, "tokens", "list", "--json").stdout)[0]["state"] == "revoked"


def test_the_commands_use_the_database_the_settings_name(project, env) -> None:
    # Given platform.database pointing elsewhere through the environment
    elsewhere = project / "data" / "accounts.sqlite"
    env = {**env, "PLBA_PLATFORM__DATABASE": str(elsewhere)}
    # When a user is added, then the file is created there (with its directory), not under var/
    add(project, env, "alice", "viewer")
    assert elsewhere.is_file() and not (project / "var").exists()


def test_users_added_by_processes_at_once_on_a_new_file_are_all_there(project, env) -> None:
    # Given four `plba users add` started together on a database that does not exist yet
    processes = [subprocess.Popen([sys.executable, "-m", "plba", "users", "add", f"user{n}", "--role", "viewer",
                                   "--password-stdin"], cwd=project, env=env, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for n in range(4)]
    results = [process.communicate(PASSWORD, timeout=60) for process in processes]
    # Then each succeeded and every user is listed
    assert [process.returncode for process in processes] == [0] * 4, results
    listed = json.loads(plba("users", "list", "--json", cwd=project, env=env).stdout)
    assert sorted(row["name"] for row in listed) == [f"user{n}" for n in range(4)]
