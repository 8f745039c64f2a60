"""`python -m carlang` runs the command-line interface."""

from carlang.cli import main

main()
