"""Simulators for the agent's seams: the W25Q128JV chip, its SPI port, a virtual
clock, a fault-injecting Azure Blob server and whole simulated devices."""
