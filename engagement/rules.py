"""Placeholder; replaced before commit."""


def register() -> None:
    return None
