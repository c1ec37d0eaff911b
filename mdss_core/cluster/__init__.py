"""Archive-scale work: a resumable scoring run (its journal), scoring spread over Ray actors,
and training every category of a dataset root. Ray is optional (``pip install mdss[cluster]``)
and imported only when asked for (:mod:`mdss_core.cluster.ray_env`)."""
