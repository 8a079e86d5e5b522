"""The register map (hdl/core/registers.py): layout rules, the generated doc table, JSON and C header."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from wavecore.golden.plan.traffic import TRAFFIC_CLASSES
from wavecore.hdl.core.registers import ID_MAGIC, CoreIdentity, ErrorCode, RegisterMap, default_register_map

DOC = Path(__file__).resolve().parents[3] / "docs" / "core.md"


def _section(text: str, heading: str) -> str:
    match = re.search(rf"^## {re.escape(heading)}\n\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    assert match, f"docs/core.md has no section {heading!r}"
    return match.group(1)


def test_doc_register_map_is_the_generated_table():
    expected = default_register_map().markdown()
    assert _section(DOC.read_text(), "Register map").rstrip() == expected.rstrip(), (
        "docs/core.md 'Register map' is stale: replace the section with "
        "wavecore.hdl.core.registers.default_register_map().markdown()"
    )


def test_layout_is_word_aligned_unique_and_counters_follow_the_traffic_classes():
    regs = default_register_map()
    offsets = [register.offset for register in regs.registers]
    assert offsets == sorted(set(offsets)) and all(offset % 4 == 0 for offset in offsets)
    assert regs.traffic_classes == TRAFFIC_CLASSES
    assert regs.counters[:3] == ("cycles", "instructions", "array_busy")
    for index, cls in enumerate(TRAFFIC_CLASSES):
        assert regs.counter_offsets(f"bytes_read_{cls}") == (0x100 + 16 * index, 0x104 + 16 * index)
        assert regs.counter_offsets(f"bytes_written_{cls}") == (0x108 + 16 * index, 0x10C + 16 * index)
    # Appending a class moves nothing that existed.
    extended = RegisterMap(traffic_classes=(*TRAFFIC_CLASSES, "optimizer", "io"))
    for register in regs.registers:
        assert extended[register.name].offset == register.offset
    assert extended.identity_values(CoreIdentity())["CONFIG_CLASSES"] == len(TRAFFIC_CLASSES) + 2


def test_identity_values_pack_the_configuration():
    values = default_register_map().identity_values(CoreIdentity(rows=16, cols=32, in_width=8, acc_width=32,
                                                                 dram_data_width=128))
    assert values["ID"] == ID_MAGIC == int.from_bytes(b"WAVE", "big")
    assert values["VERSION"] == 0x0001_0000
    assert values["CONFIG_ARRAY"] == 32 << 16 | 16
    assert values["CONFIG_WIDTHS"] == 128 << 16 | 32 << 8 | 8


def test_json_description_round_trips_and_names_every_error_code():
    description = json.loads(default_register_map().to_json())
    assert [r["name"] for r in description["registers"]] == [r.name for r in default_register_map().registers]
    assert {e["name"]: e["value"] for e in description["error_codes"]} == {c.name: int(c) for c in ErrorCode}
    assert description["traffic_classes"] == list(TRAFFIC_CLASSES)


@pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler")
def test_c_header_compiles_and_agrees_with_the_map(tmp_path):
    regs = default_register_map()
    (tmp_path / "wavecore_registers.h").write_text(regs.c_header())
    checks = [("WAVECORE_CONTROL", regs.offset("CONTROL")), ("WAVECORE_BYTES_WRITTEN_STASH_HI",
              regs.offset("BYTES_WRITTEN_STASH_HI")), ("WAVECORE_STATUS_ERROR_MASK", 4),
              ("WAVECORE_ERROR_START_WHILE_BUSY", int(ErrorCode.START_WHILE_BUSY))]
    body = "\n".join(f'  printf("%u\\n", (unsigned){name});' for name, _ in checks)
    (tmp_path / "main.c").write_text(f'#include <stdio.h>\n#include "wavecore_registers.h"\nint main(void) {{\n'
                                     f"{body}\n  return 0;\n}}\n")
    subprocess.run(["cc", "-Wall", "-Werror", "-o", str(tmp_path / "main"), str(tmp_path / "main.c")], check=True)
    output = subprocess.run([str(tmp_path / "main")], check=True, capture_output=True, text=True).stdout.split()
    assert [int(value) for value in output] == [value for _, value in checks]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"traffic_classes": ()}, ValueError, "traffic_classes must name at least one class"),
        ({"traffic_classes": ("Stash",)}, ValueError,
         "traffic class names must be lower-case identifiers, not 'Stash'"),
        ({"address_width": 8}, ValueError, "address_width 8 is too small: the map needs 352 bytes"),
    ],
)
def test_register_map_rejects_bad_parameters(kwargs, error, message):
    with pytest.raises(error) as raised:
        RegisterMap(**kwargs)
    assert str(raised.value) == message


def test_identity_rejects_out_of_range_fields():
    with pytest.raises(ValueError, match=r"^rows must be an integer between 1 and 65535, not 0$"):
        CoreIdentity(rows=0)
