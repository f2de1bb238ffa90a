"""Mail order bot: customers email order spreadsheets; the bot prices them and stores the orders."""

__version__ = "0.1.0"
# The plugin's name: its entry point, the prefix of its workers' names, its queue and its service.
name = "mail_order_bot"
