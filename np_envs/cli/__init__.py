"""The ``np-envs`` command line: one module per subcommand, dispatched by ``main``."""
