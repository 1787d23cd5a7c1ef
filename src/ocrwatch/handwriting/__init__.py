"""The handwriting language model: word lists and pairs, CTC search, spelling, typography."""
