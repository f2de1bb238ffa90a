"""Mail order bot: customers email order spreadsheets; the bot prices them and stores the orders."""

__version__ = "0.1.0"
