"""``ffpt serve MODEL --ipi ADDRESS --structure FILE``: an i-PI client that answers force requests.

Start i-PI first (``i-pi input.xml``, its ``<ffsocket>`` naming the same address), then this verb;
it serves until i-PI closes the connection. i-PI sends only positions and the cell, so ``--structure``
gives the elements (and, in ``info``, charge and spin multiplicity): the same atoms in the same
order as i-PI's input. i-PI needs a cell even for one gas-phase molecule (it stops at start without
one): give the molecule a box in i-PI's input. Config keys (``ffpt serve [CONFIG.yaml] [MODEL] [key=value ...]``):
:class:`ServeConfig`.
"""

from __future__ import annotations

import argparse
from typing import Any

from pydantic import Field

from ffpt.cli._config import add_config_arguments, add_teacher_option_argument, resolve_config, teacher_option_flags
from ffpt.config import ConfigError, Strict

HELP = ("serve a model (or teacher) as an i-PI client: i-PI drives NVT, NPT, replica exchange and "
        "path-integral MD over a UNIX or TCP socket")


class ServeConfig(Strict):
    """What ``ffpt serve`` serves, to which i-PI server."""

    calculator: str = Field(description="ffpt model file or teacher name (the positional MODEL)")
    teacher_options: dict[str, Any] = Field(default_factory=dict, description="options of a teacher")
    ipi: str = Field(description="i-PI address: unix:NAME or NAME (socket /tmp/ipi_NAME), or HOST:PORT (TCP)")
    structure: str = Field(description="i-PI's input structure (any ASE-readable file): elements and order")
    structure_index: int = 0
    charge: int | None = Field(None, description="total charge, e (default: the structure's info, else 0)")
    spin: int | None = Field(None, ge=1, description="spin multiplicity 2S+1 (default: the structure's info)")
    device: str = "cpu"
    wait_s: float = Field(60.0, ge=0, description="how long to wait for the i-PI server to come up, s")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, "ServeConfig keys; or the MODEL file / teacher name")
    parser.add_argument("--calculator", help="model file or teacher name (or the first positional word)")
    add_teacher_option_argument(parser)
    parser.add_argument("--ipi", metavar="ADDRESS",
                        help="i-PI server: unix:NAME or NAME (UNIX socket /tmp/ipi_NAME), or HOST:PORT (TCP)")
    parser.add_argument("--structure", help="the structure i-PI was given (same atoms, same order)")
    parser.add_argument("--structure-index", type=int, help="frame of --structure (default 0)")
    parser.add_argument("--charge", type=int, help="total charge, e (overrides the structure's info)")
    parser.add_argument("--spin", type=int, help="spin multiplicity 2S+1 (overrides the structure's info)")
    parser.add_argument("--device", help="device for model files (default cpu)")
    parser.add_argument("--wait", type=float, help="seconds to wait for the i-PI server (default 60)")


def _positional_model(args: argparse.Namespace) -> str | None:
    """Sort the positional words into the YAML file, ``key=value`` overrides and MODEL (returned)."""
    words = [w for w in (args.config, *args.overrides) if w is not None]
    yaml_files = [w for w in words if "=" not in w and w.lower().endswith((".yaml", ".yml"))]
    plain = [w for w in words if "=" not in w and w not in yaml_files]
    if len(yaml_files) > 1 or len(plain) > 1:
        raise ConfigError(f"unexpected words {words}: give [CONFIG.yaml] [MODEL] [key=value ...]")
    args.config = yaml_files[0] if yaml_files else None
    args.overrides = [w for w in words if "=" in w]
    return plain[0] if plain else None


def run(args: argparse.Namespace) -> int:
    import json
    import sys
    from dataclasses import asdict

    from ffpt import keys
    from ffpt.cli._structures import checked_calculator
    from ffpt.data.io import read_structure
    from ffpt.simulate.ipi import parse_address, serve

    model = _positional_model(args)
    flags = {
        "calculator": args.calculator if args.calculator is not None else model,
        **teacher_option_flags(args.teacher_option), "ipi": args.ipi, "structure": args.structure,
        "structure_index": args.structure_index, "charge": args.charge, "spin": args.spin, "device": args.device,
        "wait_s": args.wait,
    }
    config = resolve_config(ServeConfig, args, flags)
    address = parse_address(config.ipi)
    atoms = read_structure(config.structure, config.structure_index)
    for key, value in ((keys.CHARGE, config.charge), (keys.SPIN, config.spin)):
        if value is not None:
            atoms.info[key] = value
    if atoms.cell.rank < 3:
        print(f"ffpt serve: note: {config.structure} has no cell; i-PI needs one even for a gas-phase molecule "
              "(without it i-PI stops with 'Initializer could not initialize the cell'): give i-PI's input "
              "structure a box, e.g. 20 A; this non-periodic structure keeps the model's view isolated",
              file=sys.stderr)
    calculator = checked_calculator(config, atoms, config.device)
    summary = serve(calculator, atoms, address, config.wait_s)
    print(json.dumps(asdict(summary)))
    return 0
