"""What people keep: versioned algorithms, datasets and models, their objects and sources,
images (own and site), sharing, model downloads."""
