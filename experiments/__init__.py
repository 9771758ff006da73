"""The experiment and benchmark scripts (run as ``python experiments/NAME.py`` or ``python -m experiments.NAME``).

A regular package, so that ``from experiments import _common`` finds this folder first once the repository root is
on ``sys.path`` (each script puts it there). Nothing is imported here.
"""
