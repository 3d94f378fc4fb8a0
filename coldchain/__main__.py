"""Allow `python -m coldchain`."""

from coldchain.cli import main

# Guarded: a spawned helper process (the worker's ack publisher) imports this module again.
if __name__ == "__main__":
    main()
