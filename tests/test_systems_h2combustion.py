"""ffpt.systems.h2combustion: reactions.json parsed once into typed channels, stationary points, species."""

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from ffpt.data import DataError
from ffpt.systems.h2combustion import (
    COMBUSTION_SPECIES,
    Channel,
    load_channel,
    load_channels,
    read_stationary_point,
    stationary_energy_hartree,
    stationary_point_path,
)

TABLE = {
    "_about": "two channels of a test table",
    "09": {"reaction": "HO2 -> H + O2", "multiplicity": 2, "natoms": 3, "cv": [["O1_H1"], ["O2_H1"]],
           "r0": [0.96, 1.84]},
    "12b": {"reaction": "HO2 + O -> OH + O2 (quartet)", "multiplicity": 4, "natoms": 4,
            "cv": [["O1_H1", "O2_H1"], ["H1_O3"]], "r0": [0.96, 0.96]},
}


def write_table(tmp_path, table=TABLE) -> Path:
    path = tmp_path / "reactions.json"
    path.write_text(json.dumps(table))
    return path


def test_channels_are_typed_records_with_species(tmp_path):
    channels = load_channels(write_table(tmp_path))
    assert list(channels) == ["09", "12b"]  # the "_about" note is not a channel
    quartet = channels["12b"]
    assert isinstance(quartet, Channel) and quartet.id == "12b" and quartet.multiplicity == 4
    assert quartet.natoms == 4 and quartet.cv_labels == (("O1_H1", "O2_H1"), ("H1_O3",)) and quartet.r0 == (0.96, 0.96)
    assert quartet.species.reactants == Counter({"HO2": 1, "O": 1})  # Hill formulas; "(quartet)" ignored
    assert quartet.species.products == Counter({"HO": 1, "O2": 1})
    assert quartet.species.allowed <= COMBUSTION_SPECIES
    assert load_channel(tmp_path / "reactions.json", "09").species.products == Counter({"H": 1, "O2": 1})


@pytest.mark.parametrize("change, message", [
    ({"09": {"reaction": "HO2 -> H + O2"}}, r"channel 09: missing key 'multiplicity'"),
    ({"09": {"reaction": "HO2 + -> H", "multiplicity": 2}}, r"channel 09: .*cannot read term"),
    ({"09": {"reaction": "HO2 -> H + O2", "multiplicity": 2, "cv": [["O1_H1"]], "r0": []}},
     r"channel 09: 1 CVs but 0 r0 values"),
    ({"09": {"reaction": "HO2 -> H + O2", "multiplicity": 0}}, r"channel 09: key 'multiplicity' must be >= 1"),
])
def test_bad_tables_name_file_and_channel(tmp_path, change, message):
    path = write_table(tmp_path, change)
    with pytest.raises(DataError, match=re.escape(str(path)) + ", " + message):
        load_channels(path)


def test_unknown_channel_and_unreadable_file(tmp_path):
    path = write_table(tmp_path)
    with pytest.raises(DataError, match=r"no channel '99'; known: 09, 12b"):
        load_channel(path, "99")
    bad = tmp_path / "broken.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match="broken.json: cannot read reactions"):
        load_channels(bad)


def test_stationary_points_and_their_energies(tmp_path):
    channel = load_channel(write_table(tmp_path), "09")
    folder = tmp_path / "geometries"
    folder.mkdir()
    ts = stationary_point_path(folder, "TS", "09")
    assert ts == folder / "TS_09.xyz"
    ts.write_text("3\nStep   0 E=    -150.826492 |G|=  0.000001\nO 0.45 0.27 0\nO -0.67 -0.15 0\nH 1.79 -1.0 0\n")
    assert stationary_energy_hartree(ts) == pytest.approx(-150.826492)
    atoms = read_stationary_point(folder, "TS", channel)
    assert atoms.get_chemical_formula() == "HO2" and atoms.info == {"channel": "09", "charge": 0, "spin": 2}
    with pytest.raises(DataError, match="reactant_09.xyz: combustion geometry not found"):
        read_stationary_point(folder, "reactant", channel)
    with pytest.raises(DataError, match="combustion kind 'transition'"):
        stationary_point_path(folder, "transition", "09")
    (folder / "product_09.xyz").write_text("2\nno energy here\nH 0 0 0\nO 0 0 0.97\n")
    assert stationary_energy_hartree(folder / "product_09.xyz") is None
    for comment, energy in (("E-14 = -76.234952", -76.234952), ("E0 =  -76.220436", -76.220436),
                            ("E14 = -76.231659", -76.231659), ("PES scan, value:    0.6000 energy:  -76.09", None)):
        (folder / "irc.xyz").write_text(f"2\n{comment}\nH 0 0 0\nO 0 0 0.97\n")  # channel 02's IRC end points
        assert stationary_energy_hartree(folder / "irc.xyz") == (None if energy is None else pytest.approx(energy))
    with pytest.raises(DataError, match="product_09.xyz: 2 atoms, channel 09 has 3"):
        read_stationary_point(folder, "product", channel)


def test_only_systems_knows_the_data_set():
    """No other module parses reactions.json or the stationary-point files, or spells the species set."""
    src = Path(__file__).resolve().parents[1] / "src" / "ffpt"
    home = src / "systems" / "h2combustion.py"
    patterns = [r"json\.load\w*\(.*reactions", r"\"multiplicity\"\]", r"def parse_reaction", r"\bE=\\s",
                r"f\"(reactant|TS|product)_\{", r"\"H2O2\"\)"]
    for path in src.rglob("*.py"):
        if path == home:
            continue
        text = path.read_text()
        for pattern in patterns:
            assert not re.search(pattern, text), f"{path.relative_to(src)} matches {pattern}"
