"""Pallas kernels for the depthwise end of the spectrum: TPU (Mosaic) and GPU (Triton).

See README.md beside this file for the tiling, the VMEM budget and the expected bounds.
"""
