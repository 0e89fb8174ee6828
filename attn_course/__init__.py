"""The Quadratic Wall — companion package of the attention course."""
