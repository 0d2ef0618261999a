"""The bottom layer: errors and shared constants. Imports nothing of seg and no third-party package."""
