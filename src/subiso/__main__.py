"""``python -m subiso``: the same command as the ``subiso`` console script."""

from subiso.cli import main

if __name__ == "__main__":
    main(prog_name="subiso")
