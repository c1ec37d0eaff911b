"""mdss desktop inspector (PySide6). Installed as the ``mdss_app`` package."""
