"""The bot's settings: one declaration gives the defaults, the validators and the README table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from dynaconf import Dynaconf

from mail_order_bot.config import SECTION, SETTINGS, BotConfig, validators

README = Path(__file__).resolve().parents[1] / "README.md"


def validated(**section) -> Dynaconf:
    """Settings holding `section` under [mail_order_bot], validated with the bot's validators."""
    settings = Dynaconf(environments=False, settings_files=[])
    for key, value in section.items():
        settings.set(f"{SECTION}.{key}", value)
    settings.validators.register(*validators())
    settings.validators.validate_all()
    return settings


def test_with_no_settings_at_all_every_key_has_its_declared_default():
    # Given no settings file, When the validators run, Then every key is set to its default
    settings = validated()
    assert {s.key: settings.get(f"{SECTION}.{s.key}") for s in SETTINGS} == {s.key: s.default for s in SETTINGS}
    # And the typed config reads them back
    config = BotConfig.from_settings(settings)
    assert (config.source, config.maildir, config.limits.max_rows, config.imap.port) == ("maildir", "var/mail",
                                                                                         10_000, 993)


def test_every_validator_names_a_declared_key():
    # The validator names are the section's known keys (the platform warns about any other key)
    names = {name for v in validators() for name in v.names}
    assert names == {f"{SECTION}.{s.key}" for s in SETTINGS}


def test_imap_keys_are_required_only_for_an_imap_source():
    validated(source="maildir")
    with pytest.raises(Exception, match="mail_order_bot.imap.host is required when mail_order_bot.source is imap"):
        validated(source="imap", imap={"user": "u"})


def test_a_float_setting_accepts_an_int_and_keeps_fractions():
    assert BotConfig.from_settings(validated(poll_interval=0.2)).poll_interval == 0.2
    assert BotConfig.from_settings(validated(poll_interval=2)).poll_interval == 2.0


def test_the_readme_settings_tables_match_the_declaration():
    # Given the README's two settings tables
    rows = re.findall(r"^\| `([\w.]+)` \| (.*?) \| (.*) \|$", README.read_text(), re.MULTILINE)
    documented = {key: (default, meaning) for key, default, meaning in rows}
    # Then they list every declared key with its default and meaning, and nothing else
    declared = {}
    for s in SETTINGS:
        default = s.default
        shown = (f'`"{default}"`' if isinstance(default, str) else f"`{str(default).lower()}`"
                 if isinstance(default, bool) else f"`{default:_}`" if isinstance(default, int) else f"`{default:g}`")
        declared[s.name if s.key.startswith("imap.") else s.key] = (shown, s.help)
    assert documented == declared
