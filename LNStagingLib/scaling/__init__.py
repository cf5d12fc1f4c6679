"""Running beyond one process: cohorts on a Dask cluster (clusters, batch) and training with torch.distributed (ddp)."""
