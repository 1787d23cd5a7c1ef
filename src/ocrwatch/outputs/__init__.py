"""What a recognized document becomes: sidecar text, manifest, searchable PDF, hOCR, ALTO."""
