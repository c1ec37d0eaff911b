"""Dual-Memory Guided Reverse Distillation (DM-GRD) on the colour image, fused with MDSS's
signed-distance branch for RGB+3D (see ``net.py``)."""
