"""Benchmarks for ocrwatch: accuracy, speed and synthetic phone photos (not shipped)."""
