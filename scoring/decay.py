"""Placeholder while the decay helper works; replaced before commit."""


def register() -> None:
    return None
