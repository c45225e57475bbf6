"""Exceptions shared across the agent's seams."""


class PowerLoss(Exception):
    """The device lost power: nothing volatile survives and no I/O completes.

    Raised by an SPI port (simulated, or a bench port whose flash supply is cut)
    on every exchange from the instant power goes until it returns. The agent
    never handles it except to stop; a fresh agent boots after power returns.
    """
