"""Build hook for the optional C extensions; metadata is in pyproject.toml.

``capture._csum`` (checksums) and ``capture._fastpath`` (the in-order TCP fast path: its frame
decoder ``capture/decode_frame.h`` and the checksum-offload tracker ``capture/offload.c``). Both are
optional: without a compiler the pure-Python paths give the same results, more slowly.
"""

from setuptools import Extension, setup

setup(ext_modules=[
    Extension("capture._csum", ["capture/_csum.c"], depends=["capture/csum.h"], optional=True),
    Extension("capture._fastpath", ["capture/_fastpath.c", "capture/offload.c"],
              depends=["capture/csum.h", "capture/decode_frame.h", "capture/offload.h"], optional=True,
              extra_compile_args=["-O2", "-Wall"]),
])
