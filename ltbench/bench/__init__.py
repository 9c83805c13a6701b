"""Benchmarks: ``train`` (pipeline, step, evaluation), ``compare`` (conventional loop vs ltbench), ``dpp``
(k-DPP samplers), ``profile`` (torch.profiler), ``report`` (tables over many records). CLI: :mod:`ltbench.cli.bench`."""
