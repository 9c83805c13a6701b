"""Datasets (long-tailed profiles, readers) and the device-resident loader."""
