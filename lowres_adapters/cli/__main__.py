"""Allow ``python -m lowres_adapters.cli`` (and ``accelerate launch -m lowres_adapters.cli adapt ...``)."""

from lowres_adapters.cli import main

main()
