"""Panels of the main window (2D views, 3D view, lists, inspector, threshold, curves)."""
