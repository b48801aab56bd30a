"""Plugin machinery: the hook specifications and discovery through entry points."""
