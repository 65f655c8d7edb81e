"""Parse a photo with a face parser exported by ``genkit export onnx``: onnxruntime, numpy and Pillow only.

    python onnx_parse.py parser-onnx/parser.onnx photo.jpg labels.png
"""

import json
import sys

import numpy as np
import onnxruntime as ort
from PIL import Image

model, photo, out = sys.argv[1:4]
session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
meta = session.get_modelmeta().custom_metadata_map  # genkit_version, weights_sha256, schema, image_size, ...
size = int(meta.get("resize_to") or meta["image_size"])  # the size genkit parses at (512 for the BiSeNet)
image = Image.open(photo).convert("RGB").resize((size, size), Image.BILINEAR)
x = np.asarray(image, dtype=np.float32).transpose(2, 0, 1)[None] / 255.0  # RGB in [0, 1], NCHW
(logits,) = session.run(None, {"image": x})
labels = logits.argmax(1)[0].astype(np.uint8)
Image.fromarray(labels).save(out)
classes = json.loads(meta["schema"])["classes"]
for k in np.unique(labels):
    print(f"{classes[k]}: {(labels == k).mean():.1%}")
