"""The foundation: errors, image and file I/O, device choice, the pretrained-weights registry, console output.

Everything in genkit may import from here; this package imports nothing else of genkit's.

``errors``       the user-facing exceptions (one line naming the file or option)
``reading``      the read policy and decoding of photos and label maps
``tensors``      PIL images <-> float tensors
``saving``       writing images and label maps (format from the extension, metadata)
``metadata``     where an output's metadata lives (PNG chunk or JSON sidecar)
``files``        atomic writes
``outputs``      output-path checks before any work starts
``checkpoints``  safe ``torch.load`` and atomic ``torch.save``
``device``       the one device policy (``auto``)
``weights``      the registry of pretrained files and the offline policy
``console``      each console line once
"""
