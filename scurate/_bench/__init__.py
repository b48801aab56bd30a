"""``scurate bench``: held-out split, proxies, summary, the driver and its page."""
