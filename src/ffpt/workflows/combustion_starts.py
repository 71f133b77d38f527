"""MD starts at every hydrogen-combustion channel's stationary point, each in its channel's spin state
(multiplicity from ``reactions.json``): the starts of the experiment's stability batches
(``stability.h2combustion``) and of active-learning exploration (``explore.h2combustion``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from ase import Atoms
from pydantic import BeforeValidator

from ffpt.config import ConfigError, Strict
from ffpt.simulate.monitors import MinDistanceMonitor


def _channel_id(value):
    """A channel id as the data set spells it: YAML reads ``01`` or ``12`` as a number -> '01', '12'."""
    return f"{value:02d}" if isinstance(value, int) and not isinstance(value, bool) else value


ChannelId = Annotated[str, BeforeValidator(_channel_id)]


class CombustionStarts(Strict):
    """MD starts at a stationary point of every listed hydrogen-combustion channel, each run in its
    channel's spin state (multiplicity from ``reactions``)."""

    geometries: Path  # folder with {kind}_{channel}.xyz
    reactions: Path  # reactions.json
    kind: Literal["reactant", "TS", "product"] = "TS"
    channels: list[ChannelId] | None = None  # ids or numbers ("12" = 12a and 12b); default: every channel with a geometry
    # named sets of channels with their own stable fractions and log-rank test, e.g. channels tuned on
    # and channels kept as the check: {tune: ["01", ..., "13"], check: ["14", ..., "19"]}
    groups: dict[str, list[ChannelId]] = {}


def listed(channel: str, channels) -> bool:
    """Channel id ``channel`` (e.g. '12a') is in ``channels``, itself or by its number ('12')."""
    wanted = {str(c) for c in channels}
    return channel in wanted or channel[:2] in wanted


def combustion_starts(starts: CombustionStarts, min_distance: float | None, key: str,
                      distance_key: str) -> dict[str, Atoms]:
    """Start name (e.g. ``TS_09``) -> structure with its channel's spin, charge and id in ``info``.
    ``key`` names the section in errors (e.g. 'stability.h2combustion'), ``distance_key`` the collapse
    monitor's ``min_distance`` (Å): a start it already flags is an input error, not an MD failure at 0 fs."""
    from ffpt.systems.h2combustion import load_channels, read_stationary_point, stationary_point_path

    channels = load_channels(starts.reactions)
    if starts.channels is None:
        wanted = [c for c in channels if stationary_point_path(starts.geometries, starts.kind, c).exists()]
    else:
        wanted = [c for c in channels if listed(c, starts.channels)]
        unknown = sorted(c for c in starts.channels if not any(listed(w, [c]) for w in channels))
        if unknown:
            raise ConfigError(f"key '{key}.channels': {unknown} not in {starts.reactions}")
    for group, members in starts.groups.items():
        unknown = sorted(c for c in members if not any(listed(w, [c]) for w in wanted))
        if unknown:
            raise ConfigError(f"key '{key}.groups.{group}': {unknown} are not among the starts")
    if not wanted:
        raise ConfigError(f"key '{key}': no {starts.kind} geometry in {starts.geometries}")
    structures = {f"{starts.kind}_{c}": read_stationary_point(starts.geometries, starts.kind, channels[c]) for c in wanted}
    collapse = MinDistanceMonitor(min_distance) if min_distance is not None else None
    for name, atoms in structures.items():
        problem = collapse.check(atoms, 0.0) if collapse is not None else None
        if problem is not None:
            raise ConfigError(f"{stationary_point_path(starts.geometries, starts.kind, name.split('_', 1)[1])}: "
                              f"{problem} (key '{distance_key}'); leave the channel out (key '{key}.channels')")
    return structures


def groups_of(starts: CombustionStarts, names: list[str]) -> dict[str, list[str]]:
    """``starts.groups`` as start names (``TS_12a`` belongs to a group listing ``12``)."""
    channel = {name: name.split("_", 1)[1] for name in names}
    return {group: [n for n in names if listed(channel[n], members)] for group, members in starts.groups.items()}
