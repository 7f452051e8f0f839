"""Neural style transfer engine (papers 002 and 001).

    backbones.py    ResNet50 / VGG19 feature extractors (grey input, BN folded)
    losses/         content, Gram, MMD, multi-reference, fused second moments, the style loss
    stylizer.py     batched multi-resolution Adam on the pixels (``Stylizer``)
"""
