"""Placeholder while the page_actions helper works; replaced before commit."""


def register() -> None:
    return None
