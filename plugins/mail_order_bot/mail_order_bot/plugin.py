"""The mail order bot's PLBA hooks: settings validators, workers and the poll schedule, health checks.

The bot itself (and the domain it composes) is imported when the runtime registers it, so that
`plba plugins list`, which imports every plugin, stays quick.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from plba import hookimpl

# For annotations only: importing them would slow `plba plugins list`.
if TYPE_CHECKING:
    from plba import RegistryScope, Settings
    from plba.admin import Admin

logger = logging.getLogger("mail_order_bot")

name = "mail_order_bot"
QUEUE = "mail_order_bot"
SERVICE = "mail_order_bot"
POLL = f"{name}.poll"


@hookimpl
def configure(settings: Settings) -> None:
    """Declare the validators of the `[mail_order_bot]` section."""
    from mail_order_bot.config import validators

    settings.validators.register(*validators())


@hookimpl
def register_workers(registry: RegistryScope) -> None:
    """Build the bot and add its discovery (a poll schedule, or an IDLE worker) and its processing workers."""
    from mail_order_bot.bot import MailOrderBot
    from mail_order_bot.config import BotConfig

    config = BotConfig.from_settings(registry.settings)
    bot = MailOrderBot(config, registry.queue(QUEUE), registry.services["traces"], name)
    # Shared through the services so register_health (and embedding code) find this runtime's bot.
    registry.services[SERVICE] = bot
    if bot.idle_worker is not None:
        registry.add_worker(bot.idle_worker)
    else:
        # The first check at start, not one interval later; with `[platform.cluster] url` each
        # check runs in one instance of the fleet, not in every one.
        registry.schedule(POLL, bot.poll, every=config.poll_interval, at_start=True)
    registry.add_worker(bot.workers)
    logger.info("mail order bot reading %s with %d worker(s), orders in %s",
                config.where(), config.workers, config.database)


@hookimpl
def register_health(registry: RegistryScope) -> None:
    """Mailbox reachable (critical), database writable (critical), mail checked recently (degraded)."""
    bot = registry.services[SERVICE]
    registry.add_health(f"{name}.mailbox", bot.mailbox_health, critical=True)
    registry.add_health(f"{name}.database", bot.database_health, critical=True)
    registry.add_health(f"{name}.freshness", bot.freshness_health, critical=False)


@hookimpl
def register_admin(admin: Admin) -> None:
    """The console's "Orders" and "Rejections" pages."""
    from mail_order_bot import admin as pages
    from mail_order_bot.config import BotConfig

    pages.register(admin, BotConfig.from_settings(admin.runtime.settings))
