"""The crash-safe OTA agent: the code that runs on the gateway.

It is the same code in simulation and on the bench. It talks to the world only
through the seams defined in this package (:mod:`agent.spi`, :mod:`agent.clock`,
:mod:`agent.target`, :mod:`agent.twin`) and never imports :mod:`sim` or :mod:`hil`.
"""
