"""Testbench side of the feeders' scratchpad banks, shared by tb_feeder.py and tb_weight_feeder.py.

:class:`BankModel` plays ``banks`` scratchpad banks behind a feeder's ``read_address``/``read_data`` ports:
each bank answers its requests in order, with random request backpressure and random response gaps, and
fails on a read of a word that was never written. Tensors are placed by element address
(``bank = address mod banks``, ``word = address // banks``), the layout every feeder documents.
"""

import itertools

import cocotb
from cocotb.triggers import ReadOnly, RisingEdge

from wavecore.verif.layouts import unpack
from wavecore.verif.stream import StreamDriver, StreamSink

__all__ = ["BankModel", "beats_of", "tiles_of", "wait_idle"]


class BankModel:
    """``banks`` banks answering the read ports ``<prefix>read_address__<b>`` / ``<prefix>read_data__<b>``."""

    def __init__(self, dut, *, prefix: str, banks: int, width: int, stall: float, rng):
        self.banks, self.width = banks, width
        self.words = [dict() for _ in range(banks)]
        self.reads = 0
        self._requests = [
            StreamSink(dut, f"{prefix}read_address__{bank}", dut.clk, backpressure_probability=stall, rng=rng)
            for bank in range(banks)
        ]
        self._responses = [
            StreamDriver(dut, f"{prefix}read_data__{bank}", dut.clk, idle_probability=stall, rng=rng)
            for bank in range(banks)
        ]
        for bank in range(banks):
            cocotb.start_soon(self._serve(bank))

    def place(self, address: int, value: int) -> None:
        bank, word = address % self.banks, address // self.banks
        assert word not in self.words[bank], f"layout puts two elements at bank {bank} word {word}"
        self.words[bank][word] = int(value)

    def place_tensor(self, tensor, base: int, pitches) -> None:
        """Element ``tensor[index]`` at ``base + sum(index * pitches)`` (``pitches`` per axis)."""
        for index in itertools.product(*map(range, tensor.shape)):
            self.place(base + sum(i * p for i, p in zip(index, pitches)), tensor[index])

    async def _serve(self, bank):
        def answer(word):
            assert word in self.words[bank], f"bank {bank}: read of unwritten word {word}"
            self.reads += 1
            self._responses[bank].append(self.words[bank][word] & ((1 << self.width) - 1))

        await self._requests[bank].serve(answer)


def beats_of(layout, words):
    """Unpack received operand words."""
    return [unpack(layout, word) for word in words]


def tiles_of(beats):
    """Split beats at ``last`` into tiles; every beat must belong to a tile."""
    tiles, current = [], []
    for beat in beats:
        current.append(beat)
        if beat["last"]:
            tiles.append(current)
            current = []
    assert not current, f"{len(current)} beats after the last 'last'"
    return tiles


async def wait_idle(dut, name: str, cycles: int = 20) -> None:
    for _ in range(cycles):
        await RisingEdge(dut.clk)
        await ReadOnly()
        if int(getattr(dut, name).value):
            return
    raise AssertionError(f"{name} not high {cycles} cycles after the last beat")
