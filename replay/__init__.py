"""Deterministic execution of recorded history.

The wasmtime engine settings that make execution deterministic, the record/replay boundary, chain verification by
re-execution and time travel. Imports ``store`` and wasmtime only: it can re-execute an actor from a chain and the
blob store alone, with no running runtime, no handlers and no network.
"""
