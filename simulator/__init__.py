"""Simulated IOS-XE PnP devices for tests, demos and benchmarks (see device.py)."""

from simulator.device import Faults, SimulatedDevice

__all__ = ["Faults", "SimulatedDevice"]
