"""The supervised-contrastive two-stage family (KCL, TSC, SBCL): shared stages and stage-2 loss (:mod:`.common`),
the model with projector and optional MoCo queue (:mod:`.model`), one module per method."""
