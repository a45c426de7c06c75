"""``python -m mlpx``: the same as the ``mlpx`` command."""

from mlpx.app.cli import entry

if __name__ == "__main__":
    entry()
