"""The fault test: tica's services as separate processes, killed and restarted under load."""
