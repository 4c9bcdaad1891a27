"""The simulated receipt printer: an ESC/POS model that draws each receipt as a PNG."""

from simulator.printer.device import SimulatedPrinter
from simulator.printer.model import EscPosModel, PrinterState

__all__ = ["EscPosModel", "PrinterState", "SimulatedPrinter"]
