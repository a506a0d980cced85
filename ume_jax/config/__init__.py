"""Configs: the shared building blocks every ``configs/*.py`` imports
(``common``) and the validation of a config before any work (``checks``)."""
