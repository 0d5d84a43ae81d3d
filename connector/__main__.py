"""`python -m connector ...` is the `nudge` command (what `nudge dev` runs its children with)."""

from connector.cli import entry

if __name__ == "__main__":
    entry()
