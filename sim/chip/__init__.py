"""The Winbond W25Q128JV at the SPI byte level: the command machine (:mod:`.w25q128`)
and its parts: busy times, write protection, records, non-volatile store, SFDP."""
