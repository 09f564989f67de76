"""``python -m fedembed`` runs the CLI."""

from fedembed.cli import main

main()
