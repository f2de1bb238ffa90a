"""Text log lines: what was logged cannot forge a line of its own or reach the terminal as escape sequences."""

from __future__ import annotations

import io
import logging

import pytest

from plba.logs import configure_logging

log = logging.getLogger("acme.requests")
FORGED = "x\n2026-01-01 00:00:00,000 CRITICAL plba: forged\r\x1b]0;title\x07\x1b[31mred\x9b2J"


@pytest.fixture
def text_log(request: pytest.FixtureRequest) -> io.StringIO:
    """The root logger writing plain lines (rich with `rich` as the parameter) into memory."""
    stream = io.StringIO()
    configure_logging("INFO", getattr(request, "param", "plain"), stream)
    yield stream
    configure_logging("WARNING", "plain")


@pytest.mark.parametrize("text_log", ["plain", "rich"], indirect=True)
def test_control_characters_in_a_message_are_shown_escaped_on_one_line(text_log: io.StringIO) -> None:
    log.warning("audit: queues.pause %s by anonymous", FORGED)
    written = text_log.getvalue()
    assert "\x1b" not in written and "\x9b" not in written and "\r" not in written and "\x07" not in written
    assert "forged" in written and "\\n2026-01-01" in written and "\\x1b]0;title" in written
    assert not any(line.lstrip().startswith("2026-01-01") for line in written.splitlines())


def test_a_traceback_keeps_its_lines_and_escapes_the_rest(text_log: io.StringIO) -> None:
    try:
        raise ValueError(f"bad order {FORGED}")
    except ValueError:
        log.exception("rejected")
    written = text_log.getvalue()
    assert "Traceback (most recent call last):\n" in written
    assert "\x1b" not in written and "\r" not in written
