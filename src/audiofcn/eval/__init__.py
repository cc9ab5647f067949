"""Evaluation: metrics and reports (JSON + PNG) for each capability."""
