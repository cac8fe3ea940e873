"""retrain: the training worker, trainer plug-ins, challenger-vs-champion evaluation, the MLflow
registry and the promotion policy (see ../shared/DESIGN.md). Empty until the retraining work lands;
retrain requests are already produced by ``streams.retrain_policy``."""
