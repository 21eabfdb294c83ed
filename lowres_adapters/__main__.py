"""Allow ``python -m lowres_adapters``."""

from lowres_adapters.cli import main

main()
