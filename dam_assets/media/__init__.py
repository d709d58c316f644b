"""Pure media functions: PyAV, Pillow and numpy only, no Dagster. Each is testable alone."""
