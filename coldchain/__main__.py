"""Allow `python -m coldchain`."""

from coldchain.cli import main

main()
