"""Explanations: LRP relevance maps with iNNvestigate (paper 002, eq. 16).

iNNvestigate needs eager execution off for the whole process, so the analysis itself runs in a
child process (``python -m tf_usaug.relevance``); the library side caches, loads and turns maps
into content-loss weights and heatmaps.
"""
