"""Mind2Mind: frozen-layer bypass transfer (latent and partial modes)."""
