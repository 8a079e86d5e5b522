"""Host driver (verif/host.py) without a simulator: MmapBus on a temporary file standing in for /dev/mem, the
backdoor hex format, and the board path (StatusPolling) reporting a fault and a timeout from register values."""

import asyncio

import pytest

from wavecore.hdl.core.registers import ID_MAGIC, CoreIdentity, ErrorCode, default_register_map
from wavecore.verif.host import (
    Bus,
    BusError,
    CoreFault,
    CoreTimeout,
    Host,
    MmapBus,
    StatusPolling,
    read_hex_image,
    write_hex_image,
)


def _file(tmp_path, size):
    path = tmp_path / "mem"
    path.write_bytes(bytes(size))
    return path


def test_mmap_bus_reads_and_writes_the_file(tmp_path):
    path = _file(tmp_path, 8192)
    bus = MmapBus(path, size=8192)

    async def body():
        await bus.write32(0x10, 0x11223344)
        await bus.write_block(0x101, b"\xaa\xbb\xcc")
        await bus.flush()
        data = path.read_bytes()
        assert data[0x10:0x14] == bytes.fromhex("44332211")
        assert data[0x100:0x105] == b"\x00\xaa\xbb\xcc\x00"
        with open(path, "r+b") as handle:  # a write by someone else is seen through the map
            handle.seek(0x200)
            handle.write(bytes.fromhex("78563412"))
        assert await bus.read32(0x200) == 0x12345678
        assert await bus.read_block(0x101, 3) == b"\xaa\xbb\xcc"
        with pytest.raises(BusError, match="outside the 0x2000-byte window"):
            await bus.read32(0x2000)
        with pytest.raises(ValueError, match="multiple of 4"):
            await bus.read32(0x11)

    asyncio.run(body())
    bus.close()


def test_mmap_bus_offset_selects_the_window(tmp_path):
    import mmap

    page = mmap.ALLOCATIONGRANULARITY
    path = _file(tmp_path, 2 * page)
    with open(path, "r+b") as handle:
        handle.seek(page + 8)
        handle.write(b"\x01\x02\x03\x04")
    bus = MmapBus(path, size=page, offset=page)
    assert asyncio.run(bus.read32(8)) == 0x04030201
    bus.close()
    with pytest.raises(ValueError, match="offset must be a multiple of"):
        MmapBus(path, size=16, offset=4)


def test_hex_image_round_trip_with_gaps(tmp_path):
    words = {0: 0x1122334455667788, 1: 5, 9: 0xFFFFFFFFFFFFFFFF, 10: 0}
    write_hex_image(tmp_path / "image.hex", words, data_width=64)
    text = (tmp_path / "image.hex").read_text().split()
    assert text[0] == "@0" and "@9" in text and text[1] == "1122334455667788"
    assert read_hex_image(tmp_path / "image.hex", first_word=0) == words
    # Verilator/Icarus style dump: address comment lines and a start address.
    (tmp_path / "dump.hex").write_text("// 0x00000004\n0a\n0b // trailing comment\n@10\nff\n")
    assert read_hex_image(tmp_path / "dump.hex", first_word=4) == {4: 10, 5: 11, 16: 255}


def _board(tmp_path, **values):
    """A register window as a file: identification registers, then the given register values."""
    regs = default_register_map()
    path = _file(tmp_path, 4096)
    data = bytearray(4096)
    for name, value in {**regs.identity_values(CoreIdentity(rows=4, cols=4)), **values}.items():
        data[regs.offset(name) : regs.offset(name) + 4] = value.to_bytes(4, "little")
    path.write_bytes(data)
    bus = MmapBus(path, size=4096)
    host = Host(registers=bus, memory=Bus(), completion=StatusPolling(bus, clock_hz=1e6, interval=1e-4),
                margin=0, slack=0)
    return host, bus


def test_board_path_reports_the_error_code_and_instruction_address(tmp_path):
    regs = default_register_map()
    status = regs["STATUS"]
    host, bus = _board(tmp_path, STATUS=status.field("done").mask | status.field("error").mask,
                       ERROR_CODE=int(ErrorCode.SCRATCHPAD_OUT_OF_RANGE), ERROR_ADDRESS_LO=0x1230,
                       ERROR_ADDRESS_HI=0x1, CYCLES_LO=77)
    identity = asyncio.run(host.identify())
    assert identity["ID"] == ID_MAGIC and identity["CONFIG_ARRAY"] == 4 << 16 | 4
    with pytest.raises(CoreFault) as raised:
        asyncio.run(host.wait(expected_cycles=1000))
    assert raised.value.code == ErrorCode.SCRATCHPAD_OUT_OF_RANGE
    assert raised.value.address == 0x1_0000_1230
    assert raised.value.counters["cycles"] == 77
    assert str(raised.value) == (
        "core stopped with error SCRATCHPAD_OUT_OF_RANGE (code 4: an instruction's scratchpad or accumulator "
        "region is outside the memory) at instruction address 0x100001230")
    bus.close()


def test_board_path_times_out_from_the_expected_cycles(tmp_path):
    regs = default_register_map()
    host, bus = _board(tmp_path, STATUS=regs["STATUS"].field("busy").mask)
    with pytest.raises(CoreTimeout, match=r"within 2000 cycles \(expected 2000\); STATUS = 0x1 \(busy=1\)"):
        asyncio.run(host.wait(expected_cycles=2000))
    bus.close()


def test_identify_rejects_a_foreign_device(tmp_path):
    host, bus = _board(tmp_path, ID=0xDEADBEEF)
    with pytest.raises(BusError, match="no WaveCore core here: ID reads 0xdeadbeef"):
        asyncio.run(host.identify())
    bus.close()


def test_unknown_error_code_is_named_unknown():
    assert "UNKNOWN (code 200" in str(CoreFault(200, 0x40))
