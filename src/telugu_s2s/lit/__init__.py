"""LightningModules: they wrap the plain models with losses, optimizers and logging."""
