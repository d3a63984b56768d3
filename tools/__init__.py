"""Tooling kept outside the study's package: it imports :mod:`dario_utils`, which never imports it."""
