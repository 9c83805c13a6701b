"""One module per method; importing this package registers them all in ``ltbench.registry.METHODS``."""

from methods import baselines, bns_ipdpp, ce, decoupling, focal, kcl, ldam, ride, ride_ea, sbcl, tsc  # noqa: F401
