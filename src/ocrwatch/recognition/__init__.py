"""Recognition of one document: open its pages, preprocess, read with an engine, correct."""
