"""Generation backends shared by evaluation and the data builder's local teachers: Hugging Face
transformers (CPU or GPU) and vLLM (GPU only, imported lazily). See `backends`."""

from mmreason.generation.backends import (
    BACKENDS,
    GenerationSettings,
    HFBackend,
    VLLMBackend,
    adapter_base,
    fill_images,
    generate_texts,
    is_adapter_dir,
    load_backend,
)

__all__ = [
    "BACKENDS",
    "GenerationSettings",
    "HFBackend",
    "VLLMBackend",
    "adapter_base",
    "fill_images",
    "generate_texts",
    "is_adapter_dir",
    "load_backend",
]
