"""Dialogs (training)."""
