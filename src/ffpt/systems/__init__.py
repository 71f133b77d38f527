"""Knowledge of particular data sets, parsed once into typed records (e.g. :mod:`ffpt.systems.h2combustion`).

May import ``units``, ``keys``, ``errors``, ``config``, ``fileio`` and ``data`` only.
"""
