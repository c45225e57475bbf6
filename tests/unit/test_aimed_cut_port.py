"""sim/ports/aimed_cut.py: cuts aimed at the Nth operation of a kind."""

import pytest

from agent.errors import PowerLoss
from sim.chip.w25q128 import W25Q128
from sim.ports.aimed_cut import AimedCut, AimedCutPort
from sim.ports.model import SimSpiPort

pytestmark = pytest.mark.sim


@pytest.mark.parametrize("send", ["exchange", "write"])
def test_the_nth_page_program_is_torn_however_it_is_sent(send):
    """The cut is armed by the command passing through the wrapper, whichever of the
    SpiPort calls carries it (pyftdi's ``write`` is a half-duplex ``exchange``)."""
    chip = W25Q128(seed=1)
    port = AimedCutPort(SimSpiPort(chip), chip)
    port.arm(AimedCut("page_program", nth=2, fraction=0.5))
    for page in range(2):
        port.exchange(b"\x06")
        getattr(port, send)(b"\x02" + (page * 256).to_bytes(3, "big") + b"\x00" * 256)
        chip.clock.advance(0.01)
    with pytest.raises(PowerLoss):
        port.exchange(b"\x05", 1)
    assert [(cut.nth, address) for cut, address in port.fired] == [(2, 0x100)]
    assert chip.array[:256] == b"\x00" * 256  # the first program completed
    assert chip.array[256:512] != b"\x00" * 256  # the second was torn
