"""Build hook for the one optional C extension (capture/_csum.c); metadata is in pyproject.toml."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("capture._csum", ["capture/_csum.c"], optional=True)])
