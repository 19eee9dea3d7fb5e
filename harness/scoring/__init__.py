"""Scoring: pure functions of stored result documents. Nothing here measures or imports a framework."""
