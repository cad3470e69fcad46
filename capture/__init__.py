"""capture stage of tapsift: packet sources (pcap/pcapng files) and decoding.

Public API: `open_capture` / `CaptureFile` / `CaptureError` (capture.pcapfile), `decode` and
`Decoder` (capture.decode).
"""

from capture.decode import Decoder, decode
from capture.pcapfile import CaptureError, CaptureFile, open_capture

__all__ = ["CaptureError", "CaptureFile", "Decoder", "decode", "open_capture"]
