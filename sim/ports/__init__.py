"""What stands behind the agent's flash seams in simulation: SPI ports
(:class:`agent.spi.SpiPort`) onto the chip model or a bytearray, the memory flash behind
:class:`agent.storage.Flash`, and wrappers in front of a port (aimed power cuts)."""
