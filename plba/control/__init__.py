"""The HTTP control plane: a Flask app served by waitress from a side thread.

Nothing here is imported until a runtime starts its control plane or a `plba status`/`stop`
command runs, so that `plba plugins list` stays quick.
"""
