"""Training: the one loop (:mod:`.trainer`), what hooks may use (:mod:`.context`), optimizers and schedules,
precision/threads/device, progress output, signal handling and backbone-owned recipes."""
