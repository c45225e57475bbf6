"""The operator's tools: publish a firmware image and target it at a device group.

They talk to real Azure as well as to this project's simulators, so they live apart
from :mod:`sim`."""
