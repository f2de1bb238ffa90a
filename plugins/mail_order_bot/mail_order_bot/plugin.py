"""The mail order bot's PLBA hooks: settings validators, workers, health checks.

The bot itself (and the domain it composes) is imported when the runtime registers it, so that
`plba plugins list`, which imports every plugin, stays quick.
"""

from __future__ import annotations

import logging
from typing import Any

from plba import hookimpl

from mail_order_bot import name

logger = logging.getLogger("mail_order_bot")

QUEUE = name
SERVICE = name


@hookimpl
def configure(settings: Any) -> None:
    """Declare the validators of the `[mail_order_bot]` section."""
    from mail_order_bot.config import validators

    settings.validators.register(*validators())


@hookimpl
def register_workers(registry: Any) -> None:
    """Build the bot and add its discovery worker and processing workers."""
    from mail_order_bot.bot import MailOrderBot
    from mail_order_bot.config import BotConfig

    config = BotConfig.from_settings(registry.settings)
    bot = MailOrderBot(config, registry.queue(QUEUE), registry.services.get("traces"))
    # Shared through the services so register_health (and embedding code) find this runtime's bot.
    registry.services[SERVICE] = bot
    registry.add_worker(bot.source)
    registry.add_worker(bot.workers)
    logger.info("mail order bot reading %s with %d worker(s), orders in %s",
                config.where(), config.workers, config.database)


@hookimpl
def register_health(registry: Any) -> None:
    """Mailbox reachable (critical), database writable (critical), mail checked recently (degraded)."""
    bot = registry.services[SERVICE]
    registry.add_health(f"{name}.mailbox", bot.mailbox_health, critical=True)
    registry.add_health(f"{name}.database", bot.database_health, critical=True)
    registry.add_health(f"{name}.freshness", bot.freshness_health, critical=False)
