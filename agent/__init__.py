"""The crash-safe OTA agent: the code that runs on the gateway.

It is the same code in simulation and on the bench. It talks to the world only
through the seams defined in this package (:mod:`agent.spi`, :mod:`agent.clock`,
:mod:`agent.target`, :mod:`agent.twin`) and never imports :mod:`sim` or :mod:`hil`.
"""

import logging

# A library's loggers stay silent until the program configures logging (the logging
# HOWTO's advice for libraries): the agent as a program, the demo and the tests do;
# a sweep of thousands of runs does not print every agent's warnings to stderr.
logging.getLogger(__name__).addHandler(logging.NullHandler())
