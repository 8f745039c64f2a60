"""`python -m carlang` runs the command-line interface."""

from carlang.entry import run

run()
