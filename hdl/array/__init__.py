"""The compute array: the processing element (:mod:`.pe`), the output- and weight-stationary systolic array
(:mod:`.systolic`) and the multipliers it instantiates (:mod:`.multiplier` generic, :mod:`.ecp5_mult` ECP5
``MULT18X18D``, :mod:`.ice40_mult` iCE40 ``SB_MAC16`` and LUT)."""
