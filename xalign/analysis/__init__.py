"""Analyses of an activation store: pure functions of xarray objects, lazy under Dask."""
