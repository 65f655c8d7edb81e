"""Sharing trained models: model folders in the Hugging Face hub's convention, ONNX files, and hub uploads.

``trained`` opens what an export starts from (run folder, checkpoint, BiSeNet file, model folder, hub id);
``pretrained`` writes model folders (``config.json``, ``model.safetensors``, a generated card from ``card``) and
checks they load back bit-identically; ``onnx_export`` writes the networks as ONNX and checks them with onnxruntime
(``synthesis`` makes the portrait generator's synthesis core traceable); ``push`` uploads a folder to the hub.
Reading model folders is the loaders' job (:mod:`genkit.core.model_folders`), so every command accepts them.
"""

from genkit.apps.export.onnx_export import export_onnx
from genkit.apps.export.pretrained import export_pretrained
from genkit.apps.export.push import push, push_payload
from genkit.apps.export.trained import open_trained

__all__ = ["export_onnx", "export_pretrained", "open_trained", "push", "push_payload"]
