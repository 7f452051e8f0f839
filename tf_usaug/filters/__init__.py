"""Image filters: SRAD speckle-reducing anisotropic diffusion (Yu & Acton 2002; paper 002)."""
