"""coldchain: cold-chain tracking for autologous cell therapy."""

__version__ = "0.1.0"
