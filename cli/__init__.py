"""The ``xalign`` command line (installed as :mod:`xalign.cli`): thin wrappers over the library."""
