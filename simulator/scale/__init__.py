"""A simulated serial scale on a pseudo-terminal, speaking any supported protocol."""

from simulator.scale.device import PROTOCOLS, SimulatedScale
from simulator.scale.encoders import Display

__all__ = ["PROTOCOLS", "Display", "SimulatedScale"]
