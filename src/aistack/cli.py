"""Command line entry point (filled in by the generator work)."""


def main() -> int:
    return 0
