"""The tools behind the CLI verbs; each is an options dataclass plus a ``run(options)`` function."""
