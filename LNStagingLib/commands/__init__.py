"""One module per ``lnstaging`` sub-command; each defines ``register(subparsers)``. Keep them thin."""
