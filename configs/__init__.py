"""Shipped configurations, read as package data: ``default.yaml`` (the default accelerator), the network
zoo in ``networks/`` and the Occam pipeline networks in ``pipelines/``."""
