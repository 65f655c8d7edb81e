"""What a person opens: the demo and its report (more to come: the browser app, export).

The top layer: may import every other package of genkit; only :mod:`genkit.cli` imports it.
"""
