"""Placeholder while the grading helper works; replaced before commit."""


def register() -> None:
    return None
