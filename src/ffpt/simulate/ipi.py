"""Serve an ASE calculator to a running i-PI server (https://ipi-code.org) as a socket client.

i-PI propagates the nuclei (NVT, NPT, replica exchange, path-integral MD, ...) and asks its clients
for energy (eV), forces (eV/A) and virial (eV) at positions it sends; ASE's
:class:`~ase.calculators.socketio.SocketClient` speaks the protocol. i-PI sends only positions and
the cell, so the client holds a template structure (same atoms, same order as i-PI's input) that
carries the elements, the charge and the spin multiplicity.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

from ffpt.errors import UserError


class IPIAddressError(UserError):
    """An i-PI address that is neither ``unix:NAME``, a bare ``NAME`` nor ``HOST:PORT``."""


class IPIConnectionError(UserError):
    """No i-PI server answered at the address within the waiting time."""


@dataclass(frozen=True)
class IPIAddress:
    """A UNIX socket ``name`` (i-PI's ``<address>``; the socket file is ``/tmp/ipi_NAME``) or a TCP
    ``host`` and ``port``."""

    name: str | None = None
    host: str | None = None
    port: int | None = None

    def __str__(self) -> str:
        return f"unix:{self.name} (/tmp/ipi_{self.name})" if self.name is not None else f"{self.host}:{self.port}"


def parse_address(text: str) -> IPIAddress:
    """``"unix:water"`` or ``"water"`` -> UNIX socket ``water``; ``"localhost:31415"`` -> TCP."""
    text = text.strip()
    kind, sep, rest = text.partition(":")
    if sep and kind == "unix":
        name = rest
    elif sep:
        if not kind or not rest.isdigit() or not 0 < int(rest) < 65536:
            raise IPIAddressError(f"i-PI address '{text}': expected unix:NAME, NAME or HOST:PORT (port 1-65535)")
        return IPIAddress(host=kind, port=int(rest))
    else:
        name = text
    if not name or "/" in name or ":" in name:
        raise IPIAddressError(f"i-PI address '{text}': a UNIX socket name must be non-empty, without '/' or ':'")
    return IPIAddress(name=name)


def connect(address: IPIAddress, wait_s: float = 60.0, poll_s: float = 0.2):
    """An ASE ``SocketClient`` connected to ``address``, retrying until the server is up or ``wait_s``
    seconds have passed (i-PI creates its socket a moment after it starts)."""
    from ase.calculators.socketio import SocketClient

    deadline = time.monotonic() + wait_s
    while True:
        try:
            if address.name is not None:
                return SocketClient(unixsocket=address.name)
            return SocketClient(host=address.host, port=address.port)
        except (FileNotFoundError, ConnectionRefusedError, socket.timeout) as exc:
            if time.monotonic() >= deadline:
                raise IPIConnectionError(f"no i-PI server at {address} after {wait_s:g} s ({exc.strerror or exc}); "
                                         "is i-PI running at that address? See its log: i-PI stops at start when "
                                         "its input structure has no cell, also for one gas-phase molecule") \
                    from None
            time.sleep(poll_s)


@dataclass(frozen=True)
class ServeSummary:
    """What a served i-PI session did: force calls answered, wall time (s)."""

    address: str
    n_atoms: int
    force_calls: int
    wall_s: float


def serve(calculator, atoms, address: IPIAddress, wait_s: float = 60.0) -> ServeSummary:
    """Answer i-PI's force requests for ``atoms`` (the template) with ``calculator`` until i-PI ends the
    connection. The virial comes from the calculator's stress when the cell is periodic in all three
    directions and the calculator gives stress (needed for NPT); otherwise it is sent as zero."""
    atoms = atoms.copy()
    atoms.calc = calculator
    use_stress = bool(atoms.pbc.all()) and "stress" in getattr(calculator, "implemented_properties", ())
    client = connect(address, wait_s)
    start, calls = time.perf_counter(), 0
    try:
        for _ in client.irun(atoms, use_stress=use_stress):
            calls += 1
    except ValueError as exc:
        if "broadcast" not in str(exc):
            raise
        raise UserError(f"i-PI at {address} sent positions that do not fit the {len(atoms)} atoms of the "
                        "structure (give the same atoms, in the same order, as i-PI's input)") from None
    return ServeSummary(str(address), len(atoms), calls, time.perf_counter() - start)
