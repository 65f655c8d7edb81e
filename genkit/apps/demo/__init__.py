"""``genkit demo``: both methods end to end on the embedded defaults, with an HTML report.

``pipeline`` runs the sections, ``plots`` draws the figures, ``report`` writes the HTML.
"""
