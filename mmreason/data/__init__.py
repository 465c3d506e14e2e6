"""Data: synthetic verifiable visual tasks and the cold-start chain-of-thought builder."""
