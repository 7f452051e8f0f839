"""Trainable model families (one sub-package each, as they arrive): the task classifier, the
multitask segmentation + classification network, the GANs and the feed-forward stylizer."""
