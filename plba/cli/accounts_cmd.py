"""`plba users ...` and `plba tokens ...`: manage the platform database's users and tokens directly."""

from __future__ import annotations

import getpass
import json
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from plba.cli.common import ExitCode, fail, reported_errors
from plba.cli.run_cmd import ConfigOption

if TYPE_CHECKING:
    from plba.users import Accounts

users = typer.Typer(help="Manage the users of the control plane and admin console.", no_args_is_help=True)
tokens = typer.Typer(help="Manage users' bearer tokens for the control plane.", no_args_is_help=True)

NameArgument = Annotated[str, typer.Argument(help="The user's name.")]
PasswordStdinOption = Annotated[bool, typer.Option(
    "--password-stdin", help="Read the password from standard input instead of asking for it twice.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
MAX_EXPIRY_DAYS = 3650


@users.command("add")
def add_user(
    name: NameArgument,
    role: Annotated[str, typer.Option("--role", help="viewer, operator or admin.")],
    password_stdin: PasswordStdinOption = False,
    config: ConfigOption = None,
) -> None:
    """Add a user with a role; the password is asked twice (or read with --password-stdin)."""
    from plba.users import Role

    with reported_errors():
        accounts = _accounts(config)
        role = Role.parse(role)
        if accounts.users.get(name) is not None:
            fail(f"a user named {name!r} already exists", ExitCode.USAGE)
        user = accounts.users.add(name, role, _password(name, password_stdin))
    typer.echo(f"added user {user.name} ({user.role})")


@users.command("list")
def list_users(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Every user with their role."""
    with reported_errors():
        found = [user.to_dict() for user in _accounts(config).users.list()]
    _print(found, as_json, "Users", ("name", "role", "created_at", "updated_at"), "No users yet: add one with "
           "`plba users add NAME --role admin`; until then the control token alone guards the control plane.")


@users.command("remove")
def remove_user(name: NameArgument, config: ConfigOption = None) -> None:
    """Remove a user and revoke every token they had."""
    with reported_errors():
        _accounts(config).users.remove(name)
    typer.echo(f"removed user {name} and their tokens")


@users.command("set-role")
def set_role(
    name: NameArgument,
    role: Annotated[str, typer.Argument(help="viewer, operator or admin.")],
    config: ConfigOption = None,
) -> None:
    """Give a user another role; it applies to their tokens at once."""
    with reported_errors():
        user = _accounts(config).users.set_role(name, role)
    typer.echo(f"{user.name} now has the {user.role} role")


@users.command("passwd")
def passwd(name: NameArgument, password_stdin: PasswordStdinOption = False, config: ConfigOption = None) -> None:
    """Give a user a new password (asked twice, or read with --password-stdin)."""
    with reported_errors():
        accounts = _accounts(config)
        accounts.users.require(name)
        accounts.users.set_password(name, _password(name, password_stdin))
    typer.echo(f"changed the password of {name}")


@tokens.command("create")
def create_token(
    user: Annotated[str, typer.Argument(help="The user the token acts as, with their role.")],
    expires_days: Annotated[int | None, typer.Option(
        "--expires-days", min=1, max=MAX_EXPIRY_DAYS, help="Days until the token expires. Default: never.")] = None,
    config: ConfigOption = None,
) -> None:
    """Create a token for USER and print it once on stdout: it cannot be shown again."""
    with reported_errors():
        new = _accounts(config).tokens.create(user, None if expires_days is None else expires_days * 86_400.0)
    info = new.info
    expiry = f"expires {info.to_dict()['expires_at']}" if info.expires_at is not None else "does not expire"
    sys.stderr.write(f"token {info.id} for {info.user} ({info.role}), {expiry}; it is shown only now:\n")
    typer.echo(new.secret)


@tokens.command("list")
def list_tokens(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Every token's id, user, role, state and times (never the token itself)."""
    with reported_errors():
        found = [token.to_dict() for token in _accounts(config).tokens.list()]
    _print(found, as_json, "Tokens", ("id", "user", "role", "state", "expires_at", "last_used_at"),
           "No tokens yet: create one with `plba tokens create USER`.")


@tokens.command("revoke")
def revoke_token(token_id: Annotated[str, typer.Argument(metavar="ID", help="The token's id.")],
                 config: ConfigOption = None) -> None:
    """Revoke a token: the control plane refuses it from the next request on."""
    with reported_errors():
        info = _accounts(config).tokens.revoke(token_id)
    typer.echo(f"revoked token {info.id} of {info.user}")


def _accounts(config: Any) -> Accounts:
    """The accounts of the platform database the layered settings name."""
    from plba.config import ConfigurationManager
    from plba.users import Accounts

    return Accounts.from_settings(ConfigurationManager(config or []).settings)


def _password(name: str, from_stdin: bool) -> str:
    """The new password: all of stdin (one trailing newline dropped), or a hidden prompt asked twice."""
    from plba.users import check_password

    if from_stdin:
        password = sys.stdin.read()
        password = password[:-2] if password.endswith("\r\n") else password.removesuffix("\n")
    else:
        if not sys.stdin.isatty():
            fail("no terminal to ask for the password on: pipe it in with --password-stdin", ExitCode.USAGE)
        password = getpass.getpass(f"Password for {name}: ")
        if getpass.getpass("Repeat the password: ") != password:
            fail("the two passwords do not match", ExitCode.USAGE)
    check_password(password)
    return password


def _print(rows: list[dict[str, Any]], as_json: bool, title: str, columns: tuple[str, ...], empty: str) -> None:
    """JSON for scripts, or a table for 80 columns: `columns` are keys, the first an identifier, `*_at` times."""
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console

    from plba.cli.common import key_column, new_table, short_column

    console = Console()
    if not rows:
        console.print(empty)
        return
    # For people, times to the minute in UTC ("2026-05-01 09:30"); --json has them in full ISO 8601.
    cells = [[("-" if row[key] is None else row[key][:16].replace("T", " ") if key.endswith("_at") else str(row[key]))
              for key in columns] for row in rows]
    table = new_table(title)
    for index, key in enumerate(columns):
        header = key.removesuffix("_at").replace("_", " ")
        values = [line[index] for line in cells]
        if index == 0 or key == "user":
            key_column(table, header, values)
        elif key.endswith("_at"):
            table.add_column(header, no_wrap=True)
        else:
            short_column(table, header, values)
    for line in cells:
        table.add_row(*line)
    console.print(table)
