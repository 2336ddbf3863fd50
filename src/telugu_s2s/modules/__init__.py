"""Reusable building blocks: streaming layers, the SEANet codec stack, quantizers, features."""
