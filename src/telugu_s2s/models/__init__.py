"""Models: plain `nn.Module`s built from a dataclass config."""
