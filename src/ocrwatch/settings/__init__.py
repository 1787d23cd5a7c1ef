"""Settings: the typed model loaded once at start, its sections, closed choices and profiles."""
