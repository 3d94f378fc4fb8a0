"""Simulated cold-chain temperature loggers that speak MQTT only (run with `python -m devices`).

They stand in for real hardware, so nothing here imports from `coldchain`.
"""
