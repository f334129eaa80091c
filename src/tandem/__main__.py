"""`python -m tandem` is the same as the `tandem` command."""

from tandem.cli import main

main()
