"""A local Microsoft 365 (Entra ID + Microsoft Graph) simulator for running and testing without Azure.

``start_simulator()`` runs it in-process (tests); ``python -m local.simulator`` runs it
as a process (local stack). Never imported by deployed code.
"""

from local.simulator.server import SimulatorHandle, start_simulator

__all__ = ["SimulatorHandle", "start_simulator"]
