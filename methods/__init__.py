"""The registered methods, one module each (families with shared parts as small packages: ``contrastive``,
``ride``). Installed as ``ltbench.methods``; importing it registers every method in
``ltbench.registry.METHODS`` (the registry imports it on first lookup)."""

import ltbench.methods.baselines
import ltbench.methods.bbn
import ltbench.methods.bns_ipdpp
import ltbench.methods.ce
import ltbench.methods.contrastive.kcl
import ltbench.methods.contrastive.sbcl
import ltbench.methods.contrastive.tsc
import ltbench.methods.decoupling
import ltbench.methods.disa
import ltbench.methods.focal
import ltbench.methods.ldam
import ltbench.methods.one_stage
import ltbench.methods.otmix
import ltbench.methods.ride.ride
import ltbench.methods.ride.ride_ea  # noqa: F401
