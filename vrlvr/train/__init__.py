"""Training: the SFT baseline (vrlvr.train.sft), data streams and held-out bookkeeping
(vrlvr.train.data), atomic checkpoints (vrlvr.train.checkpoint)."""
