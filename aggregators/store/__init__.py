"""The Redis adapter: the only code that knows keys, scripts and bytes."""
