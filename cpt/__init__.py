"""Continual pre-training at scale: a policy picks each re-weighting step's mixture of a large model's
training (paper section 3.3, Algorithm 2), distributed with PyTorch FSDP under torchrun.

The env's step is the unit: `cpt.run` steps a `DataMixEnv` whose backend (`cpt.backend.ShardedBackend`)
shards the model over ranks; sampling, feedback and reward are the env's own code.
"""
