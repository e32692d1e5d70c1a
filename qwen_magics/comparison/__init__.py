"""Side-by-side comparison: the grid of settings, running its cells and drawing them."""
