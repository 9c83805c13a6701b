"""Reporting: load run records (:mod:`.load`), tables (:mod:`.table`), figures (:mod:`.plot`) and the linear
probe (:mod:`.probe`). ``load_records`` is the public entry point (docs/architecture.md §3)."""

from ltbench.report.load import find_run_dirs, load_records, load_status, read_log, regroup

__all__ = ["find_run_dirs", "load_records", "load_status", "read_log", "regroup"]
