"""Metrics: image quality (SSIM, PSNR, speckle index, grey-histogram JS distance)."""
