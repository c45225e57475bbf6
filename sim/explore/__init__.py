"""Power-loss and network-fault exploration: scenarios as data, the runner that plays
them, the explorers that choose the cuts, the invariants that judge each run, and agent
mutants with known bugs to show the harness catches them."""
