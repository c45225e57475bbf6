"""The simulator's commands and bridges: the demo, the fleet rollout, the chip
self-check, the serprog bridge for flashrom, the benchmarks, and the command table."""
