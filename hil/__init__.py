"""The bench: the agent's seams on real hardware (a W25Q128 on an FTDI adapter
through pyftdi), rig files that describe a bench, and a virtual FT232H so the
bench code path also runs in CI."""
