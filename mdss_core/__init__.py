"""mdss engine: data, preprocessing, MDSS branches, fusion, metrics, model, CLI. No Qt here."""

__version__ = "0.1.0"
