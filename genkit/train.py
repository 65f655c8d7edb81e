"""``python -m genkit.train``: the same as ``genkit-train`` (the entry point lives in :mod:`genkit.training.entry`)."""

from genkit.training.entry import main

if __name__ == "__main__":
    main()
